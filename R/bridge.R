# Moving tables, matrices and experiments between R and the Python bridge (inst/python/linpert_rbridge.py).
# Numbers travel as little-endian raw buffers, everything else as lists and strings: see .linpert_bridge().

.read_doubles <- function(buffer, n = length(buffer) %/% 8) {
  readBin(buffer, what = "double", n = n, size = 8, endian = "little")
}

.read_ints <- function(buffer) readBin(buffer, what = "integer", n = length(buffer) %/% 4, size = 4, endian = "little")

# The dict of linpert_rbridge.frame_to_r() -> a data.frame.
.frame_from_python <- function(res) {
  res <- .as_r(res)
  names <- as.character(unlist(res$names))
  columns <- lapply(names, function(name) {
    values <- res$columns[[name]]
    switch(res$types[[name]],
      double = .read_doubles(values),
      integer = .read_ints(values),
      logical = .read_ints(values) != 0L,
      .decoded(values)
    )
  })
  names(columns) <- names
  frame <- if (length(columns)) {
    as.data.frame(columns, stringsAsFactors = FALSE, check.names = FALSE, optional = TRUE)
  } else {
    data.frame(row.names = seq_len(res$nrow))
  }
  # a column of length 0 from an empty table still needs its type: as.data.frame() keeps it
  if (!is.null(res$row_names)) rownames(frame) <- as.character(unlist(res$row_names))
  frame
}

# Strings from Python's _coded(): distinct values and 0-based int32 codes (-1: NA).
.decoded <- function(values) {
  codes <- .read_ints(values$codes) + 1L
  codes[codes == 0L] <- NA_integer_
  as.character(unlist(values$levels))[codes]
}

# Strings for Python's _decoded(): each distinct value once, and a code per element. The levels cross as a character
# vector: reticulate converts an R list element by element through S3 dispatch (0.2 s for 5,000 strings).
.coded <- function(values) {
  values <- as.character(values)
  levels <- unique(values[!is.na(values)])
  codes <- match(values, levels) - 1L
  codes[is.na(codes)] <- -1L
  list(levels = levels, codes = .raw_int(codes))
}

# A data.frame -> the arguments of linpert_rbridge.frame_from_r() (doubles as buffers).
.frame_to_python <- function(df) {
  df <- as.data.frame(df)
  types <- vapply(df, function(col) {
    # integers and logicals cross as int32 buffers, which have no NA: with NA, as doubles (NaN) and strings
    if (is.logical(col) && !anyNA(col)) "logical" else if (is.integer(col) && !anyNA(col)) "integer"
    else if (is.numeric(col)) "double" else "character"
  }, character(1))
  columns <- lapply(names(df), function(name) {
    col <- df[[name]]
    switch(types[[name]],
      double = .raw_double(col),
      integer = .raw_int(col),
      logical = .raw_int(col),
      .coded(col)
    )
  })
  names(columns) <- names(df)
  list(columns = columns, types = as.list(types), names = as.list(names(df)))
}

# Python's matrix_to_r(): a dense row-major n x m matrix or its CSR slots -> R's m x n matrix (transposed). R
# allocates the vectors and Python fills them once (inst/python/linpert_rmemory.py); where R's memory cannot be
# shared, they come as raw buffers.
.matrix_from_python <- function(m, dimnames = NULL) {
  m <- .as_r(m)
  holder <- if (.memory_shared()) .shared()
  buffers <- .as_r(.linpert_bridge()$take(m$outbox, holder))
  parts <- if (is.null(buffers)) {
    as.list(environment(holder))
  } else {
    list(x = .read_doubles(buffers$x), i = if (!is.null(buffers$i)) .read_ints(buffers$i),
         p = if (!is.null(buffers$p)) .read_ints(buffers$p))
  }
  if (isTRUE(m$sparse)) {
    # the slots are valid as they come (CSR of sorted, unique indices): no validation pass, no copy
    return(methods::new("dgCMatrix", i = parts$i, p = parts$p, x = parts$x, Dim = c(m$ncol, m$nrow),
                        Dimnames = if (is.null(dimnames)) list(NULL, NULL) else dimnames))
  }
  dim(parts$x) <- c(m$ncol, m$nrow)
  if (!is.null(dimnames)) dimnames(parts$x) <- dimnames
  parts$x
}

# A closure whose environment holds the vectors in `...`: Python reads them where they lie, or puts new ones there
# (inst/python/linpert_rmemory.py). The closure is never called.
.shared <- function(...) {
  holder <- function() NULL
  environment(holder) <- list2env(list(...), parent = emptyenv())
  holder
}

# Whether Python can read R's vectors in place in this session (checked once).
.memory_shared <- function() {
  if (is.null(.linpert$shared)) .linpert$shared <- isTRUE(.as_r(.linpert_bridge()$memory_shared(.shared())))
  .linpert$shared
}

# reticulate hands back Python objects when the bridge was imported with convert = FALSE.
# (Its argument is evaluated first: reticulate::py_to_r() would start Python before linpert could choose one.)
.as_r <- function(x) if (inherits(x, "python.builtin.object")) reticulate::py_to_r(x) else x

# A pseudobulk SummarizedExperiment (genes x conditions) -> the pseudobulk AnnData of the shared contract.
.pseudobulk_to_python <- function(se, what = "`se`") {
  .check_pseudobulk(se, what)
  values <- SummarizedExperiment::assay(se, "logcounts", withDimnames = FALSE)
  cd <- SummarizedExperiment::colData(se)
  rd <- SummarizedExperiment::rowData(se)
  provenance <- S4Vectors::metadata(se)$linpert
  values <- as.matrix(values)
  if (!is.double(values)) storage.mode(values) <- "double"
  .linpert_bridge()$pseudobulk_from_r(
    if (.memory_shared()) .shared(x = values) else .raw_double(values), .coded(colnames(se)), .coded(rownames(se)),
    n_cells = if (!is.null(cd$n_cells)) .raw_int(cd$n_cells),
    gene_id = if (!is.null(rd$gene_id)) .coded(rd$gene_id),
    provenance = .to_json(provenance)
  )
}

.check_pseudobulk <- function(se, what = "`se`") {
  if (!methods::is(se, "SummarizedExperiment") || !"logcounts" %in% SummarizedExperiment::assayNames(se)) {
    .abort(
      what, " must be a pseudobulk SummarizedExperiment (genes x conditions) with a 'logcounts' assay, as ",
      "pseudobulk(), load_dataset() or simulate_screen() |> pseudobulk() return.")
  }
  if (is.null(colnames(se)) || !"ctrl" %in% colnames(se) || is.null(rownames(se))) {
    .abort(
      what, " needs condition names as colnames (including 'ctrl') and gene symbols as rownames; ",
      "build it with pseudobulk().")
  }
  invisible(se)
}

# Metadata as JSON for Python: what jsonlite can write (numbers, strings, logicals, lists of them) is kept.
.to_json <- function(x) {
  keep <- Filter(function(v) is.atomic(v) || is.list(v), as.list(x))
  if (length(keep) == 0 || is.null(names(keep))) return("{}")
  as.character(jsonlite::toJSON(keep, auto_unbox = TRUE, digits = NA, null = "null", na = "null"))
}

# Python's anndata_to_r() -> a SingleCellExperiment, genes x cells, X as assay `x_assay`.
.sce_from_python <- function(res, x_assay = "logcounts") {
  res <- .as_r(res)
  cells <- as.character(unlist(res$obs_names))
  genes <- as.character(unlist(res$var_names))
  # no dimnames on the assays: the experiment takes its names from rowData and colData, and setting them on a
  # dgCMatrix that the constructor then strips would copy its vectors
  assays <- lapply(res$assays, .matrix_from_python)
  names(assays)[names(assays) == "X"] <- x_assay
  col_data <- S4Vectors::DataFrame(.frame_from_python(res$obs), check.names = FALSE)
  rownames(col_data) <- cells
  row_data <- S4Vectors::DataFrame(.frame_from_python(res$var), check.names = FALSE)
  rownames(row_data) <- genes
  metadata <- res$uns
  if (length(res$uns_dropped)) metadata$linpert_uns_dropped <- as.character(unlist(res$uns_dropped))
  .require_package("SingleCellExperiment", "to return cell-level data")
  SingleCellExperiment::SingleCellExperiment(
    assays = assays, colData = col_data, rowData = row_data, metadata = metadata
  )
}

.require_package <- function(package, why) {
  if (!requireNamespace(package, quietly = TRUE)) {
    .abort(
      "The R package '", package, "' is needed ", why, ". Install it (Debian: apt-get install r-bioc-",
      tolower(package), " or r-cran-", tolower(package), "; else BiocManager::install(\"", package, "\")).",
      class = "linpert_dependency_error")
  }
}

.check_count <- function(value, name, min = 1) {
  if (!is.numeric(value) || length(value) != 1 || is.na(value) || value != round(value) || value < min) {
    .abort("`", name, "` must be one whole number >= ", min, ", e.g. ", name, " = ", max(min, 1), ".")
  }
  as.integer(value)
}

.check_number <- function(value, name, lower = -Inf, upper = Inf) {
  if (!is.numeric(value) || length(value) != 1 || is.na(value) || value <= lower || value >= upper) {
    .abort("`", name, "` must be one number in (", lower, ", ", upper, ").")
  }
  as.double(value)
}

.named_options <- function(options, where) {
  if (length(options) > 0 && (is.null(names(options)) || any(!nzchar(names(options))))) {
    .abort("Options in `...` are passed to ", where, " and must be named.")
  }
  lapply(options, .whole_to_integer)
}

# linpert.<path>(...) in Python: R's arguments sent as .to_python_value() tags them, the result rebuilt in R; with
# raw = TRUE the result stays a Python object (an AnnData for as_sce()).
.py_call <- function(path, ..., raw = FALSE) {
  values <- list(...)
  named <- if (is.null(names(values))) rep(FALSE, length(values)) else nzchar(names(values))
  args <- unname(lapply(values[!named], .to_python_value))
  kwargs <- lapply(values[named], .to_python_value)
  if (raw) return(.linpert_bridge()$call_raw(path, args, kwargs))
  .from_python_value(.as_r(.linpert_bridge()$call(path, args, kwargs)))
}

# An R value for the bridge's call(): data frames tagged, numeric vectors as buffers, pseudobulks as AnnData.
.to_python_value <- function(x) {
  if (is.null(x) || inherits(x, "python.builtin.object")) return(x)
  if (is.data.frame(x)) {
    frame <- .frame_to_python(x)
    if (!identical(rownames(x), as.character(seq_len(nrow(x))))) frame$row_names <- rownames(x)
    return(c(list(`__linpert__` = "frame"), frame))
  }
  if (methods::is(x, "SummarizedExperiment")) return(.pseudobulk_to_python(x))
  if (is.list(x)) {
    if (is.null(names(x)) && length(x) > 1 && all(vapply(x, .is_string, logical(1)))) {
      return(.to_python_value(unlist(x)))  # a list of strings: sent as one character vector
    }
    converted <- lapply(x, .to_python_value)
    return(if (is.null(names(x))) unname(converted) else converted)
  }
  if (is.matrix(x) && is.numeric(x)) {  # row-major for NumPy: R's column-major buffer of the transpose
    return(list(`__linpert__` = "array2d", x = .raw_double(t(x)), nrow = nrow(x), ncol = ncol(x)))
  }
  if (is.factor(x)) x <- as.character(x)
  # character vectors whole: reticulate converts an R list element by element through S3 dispatch (0.2 s for 5,000)
  if (is.character(x) && length(x) > 1 && !anyNA(x)) return(list(`__linpert__` = "strings", x = x))
  if (is.double(x) && length(x) != 1) return(list(`__linpert__` = "doubles", x = .raw_double(x)))
  if (length(x) == 1) return(.whole_to_integer(x))
  as.list(x)
}

.is_string <- function(x) is.character(x) && length(x) == 1 && !is.na(x)

# The bridge's tagged result -> R: data frames, numeric vectors, matrices, experiments, named lists.
.from_python_value <- function(x) {
  if (!is.list(x)) return(x)
  tag <- x[["__linpert__"]]
  if (is.null(tag)) return(lapply(x, .from_python_value))
  switch(tag,
    frame = .frame_from_python(x),
    series = {
      frame <- .frame_from_python(x)
      stats::setNames(frame$value, rownames(frame))
    },
    doubles = .read_doubles(x$x),
    matrix = .matrix_from_python(x),
    anndata = .sce_from_python(x),
    record = structure(lapply(x$fields, .from_python_value), class = c(paste0("linpert_", x$class), "list")),
    dict = stats::setNames(lapply(x$values, .from_python_value), as.character(unlist(x$keys))),
    .abort("The bridge sent an unknown value ('", tag, "').", class = "linpert_python_error")
  )
}
