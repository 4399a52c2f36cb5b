#' Simulate a Perturb-seq screen with a known ground truth
#'
#' Draws cells from linpert's generative model (Python
#' `linpert.datasets.simulate()`): a control profile, single perturbations
#' with low-rank effects, double perturbations whose genetic interactions
#' arise from each gene's saturating response to the two perturbations,
#' negative-binomial counts and `log1p` normalisation.
#'
#' @param preset `"norman"` (CRISPRa, singles and doubles, like Norman et al.
#'   2019) or `"replogle"` (CRISPRi, singles only).
#' @param seed The random seed; the same seed gives the same data.
#' @param ... Overrides of the preset, by name: `n_genes`, `n_singles`,
#'   `n_doubles`, `cells_per_condition`, `n_control_cells`, `modality`,
#'   `rank`, `saturation`, `effect_scale`, `cell_type`.
#'
#' @return A `SingleCellExperiment`, genes × cells, with sparse assays
#'   `logcounts` and `counts`, `colData` in GEARS' format (`condition`,
#'   `cell_type`, `dose_val`, `control`, `condition_name`, `total_count`) and
#'   `rowData(x)$gene_name`. `metadata(x)$truth` holds the true
#'   `interactions` and `perturbations` (data frames), the `expected`
#'   pseudobulk (genes × conditions) and the `params`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen("norman", n_genes = 100, n_singles = 6, n_doubles = 4,
#'                          cells_per_condition = 10, n_control_cells = 40, seed = 1)
#'   table(sce$condition)[1:3]
#' }
simulate_screen <- function(preset = c("norman", "replogle"), seed = 0, ...) {
  preset <- match.arg(preset)
  seed <- .check_count(seed, "seed", min = 0)
  options <- .named_options(list(...), "linpert.datasets.simulate()")
  res <- .as_r(.linpert_bridge()$simulate(preset, options))
  sce <- .sce_from_python(res)
  truth <- res$truth
  S4Vectors::metadata(sce)$truth <- list(
    interactions = .frame_from_python(truth$interactions),
    perturbations = .frame_from_python(truth$perturbations),
    expected = .matrix_from_python(truth$expected, list(rownames(sce), unlist(truth$conditions))),
    params = truth$params
  )
  rownames(S4Vectors::metadata(sce)$truth$expected) <- SummarizedExperiment::rowData(sce)$gene_name
  sce
}

#' Load a published dataset of the benchmark
#'
#' Reads a dataset from linpert's cache (`LINPERT_DATA_DIR`, else
#' `~/.cache/linpert`); with `download = TRUE` a missing dataset is
#' downloaded first (Python `linpert.datasets.load()`).
#'
#' @param name `"norman"`, `"norman_gears"`, `"adamson"`,
#'   `"replogle_k562"` or `"replogle_rpe1"`.
#' @param level `"pseudobulk"` (a `SummarizedExperiment`, genes ×
#'   conditions, as [pseudobulk()] returns) or `"cells"` (a
#'   `SingleCellExperiment`).
#' @param download Download the dataset when it is not cached. With `FALSE`
#'   a missing dataset is an error that says how to get it.
#' @param cache_dir The cache folder, or `NULL` for the default.
#'
#' @return `load_dataset()`: a `SummarizedExperiment` or
#'   `SingleCellExperiment`. `dataset_cached()`: `TRUE` or `FALSE`.
#' @export
#' @examples
#' if (linpert_available() && dataset_cached("norman")) {
#'   pb <- load_dataset("norman")
#' }
load_dataset <- function(name = c("norman", "norman_gears", "adamson", "replogle_k562", "replogle_rpe1"),
                         level = c("pseudobulk", "cells"), download = FALSE, cache_dir = NULL) {
  name <- match.arg(name)
  level <- match.arg(level)
  if (!is.logical(download) || length(download) != 1 || is.na(download)) {
    .abort("`download` must be TRUE or FALSE.")
  }
  if (!is.null(cache_dir)) .check_string(cache_dir, "cache_dir")
  res <- .linpert_bridge()$load_dataset(name, level, cache_dir, download)
  if (level == "pseudobulk") .pseudobulk_experiment(.as_r(res)) else .sce_from_python(res)
}

#' @rdname load_dataset
#' @export
dataset_cached <- function(name, cache_dir = NULL) {
  .check_string(name, "name")
  isTRUE(.as_r(.linpert_bridge()$dataset_cached(name, cache_dir)))
}

#' Read a dataset in GEARS' format
#'
#' Reads GEARS' `perturb_processed.h5ad` (or the folder that holds it) into a
#' `SingleCellExperiment` (Python `linpert.datasets.read_gears()`), keeping the
#' conditions GEARS' own `PertData` keeps, as the paper loaded its data: the
#' control and perturbations of genes in GEARS' GO graph. The dropped conditions
#' are named in a warning.
#'
#' @param path The `.h5ad` file or its folder.
#' @param gears_filter `FALSE` keeps every condition of the file.
#' @param go_files The folder with GEARS' `gene2go_all.pkl` and
#'   `essential_all_data_pert_genes.pkl`; by default the dataset folder's parent
#'   when it holds them, else linpert's cache (the error says how to fetch them).
#' @return A `SingleCellExperiment`, genes × cells, assay `logcounts`.
#' @export
#' @examples
#' if (linpert_available()) {
#'     # a file in GEARS' layout: obs$condition ("ctrl", "A+ctrl", "A+B"), var$gene_name
#'     path <- tempfile(fileext = ".h5ad")
#'     sce <- simulate_screen(n_genes = 30, n_singles = 4, n_doubles = 2,
#'                            cells_per_condition = 5, n_control_cells = 20)
#'     as_anndata(sce)$write_h5ad(path)
#'     pseudobulk(read_gears(path, gears_filter = FALSE))
#' }
read_gears <- function(path, gears_filter = TRUE, go_files = NULL) {
  .check_string(path, "path")
  if (!file.exists(path)) .abort("`path` '", path, "' does not exist; pass a GEARS .h5ad file or its folder.")
  if (!is.null(go_files)) go_files <- normalizePath(go_files, mustWork = FALSE)
  .sce_from_python(.linpert_bridge()$read_gears(normalizePath(path), isTRUE(gears_filter), go_files))
}

#' Convert between SingleCellExperiment and Python's AnnData
#'
#' `as_anndata()` builds a Python `AnnData` (cells × genes) from a
#' `SummarizedExperiment`: the assays become `X` (the assay named by `X`) and
#' `layers`, `colData` becomes `obs` and `rowData` `var`; a sparse assay stays
#' sparse (dgCMatrix → CSR). `as_sce()` goes back. Numbers cross as raw
#' buffers, so this works whatever NumPy version Python has.
#'
#' @param x A `SummarizedExperiment` (for `as_anndata()`), or a Python
#'   `AnnData` (for `as_sce()`).
#' @param X The assay that becomes `X`; the others become layers.
#' @param x_assay The assay name `X` gets in R.
#' @return `as_anndata()`: a reticulate reference to a Python `AnnData`.
#'   `as_sce()`: a `SingleCellExperiment`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 50, n_singles = 3, n_doubles = 1,
#'                          cells_per_condition = 5, n_control_cells = 10)
#'   adata <- as_anndata(sce)
#'   back <- as_sce(adata)
#' }
as_anndata <- function(x, X = "logcounts") {
  if (!methods::is(x, "SummarizedExperiment")) {
    .abort("`x` must be a SingleCellExperiment or SummarizedExperiment, not <", class(x)[1], ">.")
  }
  .check_string(X, "X")
  available <- SummarizedExperiment::assayNames(x)
  if (!X %in% available) {
    .abort("x has no assay '", X, "'. Its assays are: ", paste0("'", available, "'", collapse = ", "),
         ". Name the one for X as `X = \"...\"`.")
  }
  bridge <- .linpert_bridge()
  assays <- lapply(c(X, setdiff(available, X)), function(name) {
    m <- SummarizedExperiment::assay(x, name, withDimnames = FALSE)
    if (methods::is(m, "sparseMatrix")) {
      m <- methods::as(methods::as(methods::as(m, "dMatrix"), "generalMatrix"), "CsparseMatrix")
      return(list(x = .raw_double(m@x), indices = .raw_int(m@i), indptr = .raw_int(m@p),
                  n_cells = ncol(m), n_genes = nrow(m)))
    }
    m <- as.matrix(m)
    list(x = .raw_double(m), n_cells = ncol(m), n_genes = nrow(m))
  })
  names(assays) <- c("X", setdiff(available, X))
  obs <- .frame_to_python(as.data.frame(SummarizedExperiment::colData(x)))
  obs$row_names <- if (is.null(colnames(x))) as.character(seq_len(ncol(x))) else colnames(x)
  var <- .frame_to_python(as.data.frame(SummarizedExperiment::rowData(x)))
  var$row_names <- if (is.null(rownames(x))) as.character(seq_len(nrow(x))) else rownames(x)
  bridge$anndata_from_r(assays, obs, var, uns = .to_json(list(source = "SummarizedExperiment from R", X = X)))
}

#' @rdname as_anndata
#' @export
as_sce <- function(x, x_assay = "logcounts") {
  if (!inherits(x, "python.builtin.object") || !reticulate::py_has_attr(x, "obs_names")) {
    .abort("`x` must be a Python AnnData (e.g. from as_anndata() or reticulate::import('anndata')$read_h5ad()).")
  }
  .check_string(x_assay, "x_assay")
  .sce_from_python(.linpert_bridge()$anndata_to_r(x), x_assay = x_assay)
}

#' The paper's published results
#'
#' Per-perturbation L2, Pearson delta and r² of every model and seed that
#' Ahlmann-Eltze, Huber & Anders (Nature Methods 2025) published (source data,
#' CC BY 4.0), with linpert's dataset and model names (Python
#' `linpert.published.results()`). Read them beside a run on the same data;
#' they are never mixed into a run's own tables.
#'
#' @param dataset `NULL` for all, or one of `"norman"`, `"adamson"`,
#'   `"replogle_k562"`, `"replogle_rpe1"`.
#' @return A data frame: `dataset`, `split`, `seed`, `model`, `perturbation`,
#'   `set`, `l2`, `pearson_delta`, `r2`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   norman <- published_results("norman")
#'   tapply(norman$l2, norman$model, mean)
#' }
published_results <- function(dataset = NULL) {
  if (!is.null(dataset)) .check_string(dataset, "dataset")
  .frame_from_python(.linpert_bridge()$published_results(dataset))
}
