#' Split perturbation conditions into train, validation and test
#'
#' The paper's splits (Python `linpert.splits.make_split()`):
#' `"double"` trains on every single and half of the doubles and holds out
#' the other doubles (Norman); `"simulation"` is GEARS' split of single
#' perturbations. The same conditions and seed always give the same split.
#'
#' @param conditions Condition names (e.g. `colnames(pb)`), or a pseudobulk
#'   `SummarizedExperiment` whose column names are used.
#' @param kind `"double"` or `"simulation"`.
#' @param seed The seed (the paper: 1-5 for doubles, 1-2 for singles).
#' @param ... Further settings of the scheme, by name (e.g.
#'   `train_gene_set_size = 0.75` for `"simulation"`).
#' @param split A split from `make_split()` or `read_split()`.
#' @param path The JSON file to write or read.
#'
#' @return `make_split()`, `read_split()`: a `linpert_split`, a list with
#'   `train`, `val`, `test` (sorted canonical names), `subgroups` (named
#'   list), `kind`, `seed`, `params` and `hash`. `write_split()`: the path,
#'   invisibly.
#' @export
#' @examples
#' if (linpert_available()) {
#'   conditions <- c("ctrl", "A+ctrl", "B+ctrl", "C+ctrl", "A+B", "A+C", "B+C", "A+D", "D+ctrl")
#'   s <- make_split(conditions, "double", seed = 1)
#'   s$test
#'   path <- write_split(s, tempfile(fileext = ".json"))
#'   identical(read_split(path)$hash, s$hash)
#' }
make_split <- function(conditions, kind = c("double", "simulation"), seed = 1, ...) {
  if (methods::is(conditions, "SummarizedExperiment")) conditions <- colnames(conditions)
  if (!is.character(conditions) || length(conditions) == 0 || anyNA(conditions)) {
    .abort("`conditions` must be condition names such as c('ctrl', 'A+ctrl', 'A+B'), or a pseudobulk ",
         "SummarizedExperiment.")
  }
  kind <- match.arg(kind)
  seed <- .check_count(seed, "seed", min = 0)
  params <- .named_options(list(...), "linpert.splits.make_split()")
  .split_from_python(.linpert_bridge()$make_split(kind, as.character(conditions), seed, params))
}

#' @rdname make_split
#' @export
write_split <- function(split, path) {
  .check_split(split)
  .check_string(path, "path")
  if (!dir.exists(dirname(path))) .abort("The folder of `path` ('", dirname(path), "') does not exist.")
  plain <- unclass(split)
  plain[c("train", "val", "test")] <- lapply(plain[c("train", "val", "test")], as.list)
  plain$subgroups <- lapply(plain$subgroups, as.list)
  invisible(.as_r(.linpert_bridge()$write_split(plain, normalizePath(path, mustWork = FALSE))))
}

#' @rdname make_split
#' @export
read_split <- function(path) {
  .check_string(path, "path")
  if (!file.exists(path)) .abort("No split file at '", path, "'; write one with write_split().")
  .split_from_python(.linpert_bridge()$read_split(normalizePath(path)))
}

.split_from_python <- function(res) {
  res <- .as_r(res)
  names <- function(x) sort(as.character(unlist(x)), method = "radix")
  structure(
    list(
      train = names(res$train), val = names(res$val), test = names(res$test),
      subgroups = lapply(res$subgroups, names), kind = res$kind, seed = as.integer(res$seed),
      params = res$params, hash = res$hash
    ),
    class = "linpert_split"
  )
}

.check_split <- function(split) {
  if (!inherits(split, "linpert_split")) {
    .abort("`split` must come from make_split() or read_split(), not <", class(split)[1], ">.")
  }
}

#' @export
print.linpert_split <- function(x, ...) {
  cat(sprintf("<linpert_split %s, seed %d>: %d train, %d val, %d test (hash %s)\n", x$kind, x$seed,
              length(x$train), length(x$val), length(x$test), substr(x$hash, 1, 12)))
  invisible(x)
}
