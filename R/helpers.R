#' Condition labels as linpert reads them
#'
#' `canonical_conditions()`: each label made canonical (`ctrl+A` becomes
#' `A+ctrl`; genes keep their written order), as [pseudobulk()] names
#' conditions. `condition_table()`: each label's genes, kind (`control`,
#' `single`, `double`, `combination`) and number of genes.
#'
#' @param labels Condition labels.
#' @return `canonical_conditions()`: a character vector. `condition_table()`:
#'   a data frame with the labels as row names.
#' @export
#' @examples
#' if (linpert_available()) {
#'     canonical_conditions(c("ctrl+KLF1", "KLF1+CEBPA"))
#'     condition_table(c("ctrl", "KLF1+ctrl", "KLF1+CEBPA"))
#' }
canonical_conditions <- function(labels) {
  .check_labels(labels)
  unname(.py_call("canonical_names", as.list(as.character(labels))))
}

#' @rdname canonical_conditions
#' @export
condition_table <- function(labels) {
  .check_labels(labels)
  .py_call("condition_table", as.list(as.character(labels)))
}

.check_labels <- function(labels) {
  if (!(is.character(labels) || is.factor(labels)) || length(labels) == 0 || anyNA(labels)) {
    .abort("`labels` must be condition names such as 'ctrl', 'A+ctrl' or 'A+B', without NA.")
  }
}

#' The deviation from additivity of every double and read-out gene
#'
#' `dev = AB - (A + B - ctrl)` for each double `A+B` whose singles were
#' measured, on the `n_genes` highest control means: the quantity
#' [call_interactions()] fits its empirical null to (Python
#' `linpert.interactions.additive_deviation()`).
#'
#' @inheritParams call_interactions
#' @return A data frame, one row per (double, gene): `perturbation`, `gene`,
#'   `ctrl`, `single_a`, `single_b`, `observed`, `additive`, `deviation`;
#'   attribute `missing_singles` (doubles left out, with their missing
#'   singles).
#' @export
#' @examples
#' if (linpert_available()) {
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 8,
#'                                      n_doubles = 10, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     head(additive_deviation(pb, n_genes = 60))
#' }
additive_deviation <- function(se, n_genes = 1000) {
  .check_pseudobulk(se)
  res <- .as_r(.linpert_bridge()$additive_deviation(.pseudobulk_to_python(se), .check_count(n_genes, "n_genes")))
  structure(.frame_from_python(res$table), missing_singles = res$missing_singles)
}

#' The linear model's PCA gene scores, and the simulator's response curve
#'
#' `pca_gene_scores()`: the first `n_components` principal-component scores
#' of the genes of a genes × conditions matrix, as the paper's linear model
#' embeds genes (centred, signs fixed; Python
#' `linpert.models.pca_gene_scores()`). `saturating_response()`: the
#' saturating curve by which [simulate_screen()] turns a perturbation's drive
#' into expression (Python `linpert.datasets.saturating_response()`).
#'
#' @param x A numeric matrix, genes × conditions.
#' @param n_components The number of components.
#' @param drive,capacity,offset Numeric vectors of one length.
#' @return `pca_gene_scores()`: a genes × components matrix.
#'   `saturating_response()`: a numeric vector.
#' @export
#' @examples
#' if (linpert_available()) {
#'     set.seed(1)
#'     pca_gene_scores(matrix(rnorm(50), 10), 2)
#'     saturating_response(c(0, 1, 5), c(2, 2, 2), c(0, 0, 0))
#' }
pca_gene_scores <- function(x, n_components) {
  if (!is.matrix(x) || !is.numeric(x)) .abort("`x` must be a numeric matrix, genes x conditions.")
  scores <- .py_call("models.pca_gene_scores", x, .check_count(n_components, "n_components"))
  scores <- t(scores)  # the bridge returns Python's rows as R's columns
  rownames(scores) <- rownames(x)
  scores
}

#' @rdname pca_gene_scores
#' @export
saturating_response <- function(drive, capacity, offset) {
  if (!is.numeric(drive) || !is.numeric(capacity) || !is.numeric(offset)) {
    .abort("`drive`, `capacity` and `offset` must be numeric vectors.")
  }
  .py_call("datasets.saturating_response", as.double(drive), as.double(capacity), as.double(offset))
}

#' Small random models in the real formats of the deep-learning models
#'
#' For trying an adapter end to end without the published weights: each
#' writes a randomly initialised model in the format its library reads
#' (Python `linpert.adapters.write_*()`), in the model's own environment.
#' `write_go_files()` writes GEARS' GO graph files for `genes`.
#'
#' @param folder The folder to write.
#' @param genes Gene symbols (Geneformer: Ensembl IDs).
#' @param ... Sizes and the seed, by name, as the Python functions take them
#'   (e.g. `hidden_size`, `layers`, `seed`, `runtime`; `write_scbert_model()`
#'   needs `code`, scBERT's repository, whose model class builds the weights).
#' @return The folder, invisibly.
#' @export
#' @examples
#' if (linpert_available()) {
#'     folder <- write_go_files(c("KLF1", "CEBPA", "GATA1"), tempfile("go-"))
#'     list.files(folder)
#' }
write_go_files <- function(genes, folder, ...) {
  invisible(.py_call("adapters.write_go_files", as.list(as.character(genes)), folder, ...))
}

#' scFoundation's GEARS 0.0.2 fork, as the paper ran GEARS on Norman
#'
#' The paper's `run_gears.py` ran GEARS on Norman from scFoundation's fork
#' (GEARS 0.0.2), and cell-gears 0.1.2 on the other datasets. This downloads
#' the fork once into linpert's cache: the `GEARS` folder of scFoundation's
#' repository at the commit the paper's scripts cite (Python
#' `linpert.adapters.gears_fork()`). `linpert run norman` uses it under the
#' paper preset; in R, give it to `model_spec("gears", code = gears_fork())`.
#'
#' @param cache_dir The cache folder, or `NULL` for the default
#'   (`LINPERT_DATA_DIR`, else `~/.cache/linpert`).
#' @param url Download the repository's archive from this address instead of
#'   GitHub's (or from `LINPERT_MIRROR`).
#' @param progress Show a progress bar.
#' @return The fork's folder (a path).
#' @export
#' @examples
#' if (linpert_available() && nzchar(Sys.getenv("LINPERT_MIRROR"))) {
#'   gears_fork(progress = FALSE)
#' }
gears_fork <- function(cache_dir = NULL, url = NULL, progress = interactive()) {
  .py_call("adapters.gears_fork", cache_dir = cache_dir, url = url, progress = isTRUE(progress))
}

#' @rdname write_go_files
#' @export
write_geneformer_model <- function(folder, genes, ...) {
  invisible(.py_call("adapters.write_geneformer_model", folder, as.list(as.character(genes)), ...))
}

#' @rdname write_go_files
#' @export
write_scgpt_checkpoint <- function(folder, genes, ...) {
  invisible(.py_call("adapters.write_scgpt_checkpoint", folder, as.list(as.character(genes)), ...))
}

#' @rdname write_go_files
#' @export
write_scbert_model <- function(folder, genes, ...) {
  invisible(.py_call("adapters.write_scbert_model", folder, as.list(as.character(genes)), ...))
}

#' @rdname write_go_files
#' @export
write_uce_model <- function(folder, genes, ...) {
  invisible(.py_call("adapters.write_uce_model", folder, as.list(as.character(genes)), ...))
}
