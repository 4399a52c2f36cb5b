#' Differential expression of each perturbation's cells against the control cells
#'
#' A two-sided Mann-Whitney test per perturbation and gene, with
#' Benjamini-Hochberg FDR within each perturbation, the log2 fold change of
#' the means (Python `linpert.metrics.differential_expression()`; its numbers
#' equal pdex's).
#'
#' @param x A `SingleCellExperiment` (genes × cells) with log-normalised
#'   expression.
#' @param condition The `colData(x)` column with each cell's condition.
#' @param control The control's label.
#' @param assay The assay of log-normalised expression.
#' @return A list of four genes × perturbations matrices: `log2_fold_change`,
#'   `statistic` (U of the perturbation's cells), `p_value` and `fdr`.
#' @export
#' @examples
#' if (linpert_available()) {
#'     sce <- simulate_screen(n_genes = 60, n_singles = 6, n_doubles = 4,
#'                            cells_per_condition = 20, n_control_cells = 60,
#'                            seed = 1)
#'     de <- differential_expression(sce)
#'     de$fdr[1:3, 1:2]
#' }
differential_expression <- function(x, condition = "condition", control = "ctrl", assay = "logcounts") {
  cells <- .cells_to_python(x, condition, assay)
  .check_string(control, "control")
  de <- .py_call("metrics.differential_expression", cells, condition_key = "condition", control = control)
  lapply(unclass(de), function(frame) t(as.matrix(frame)))
}

#' The replicate ceiling: how well one half of each perturbation's cells
#' predicts the other half
#'
#' Each perturbation's cells are split in random halves `n_splits` times;
#' each metric compares the halves' pseudobulks (Python
#' `linpert.metrics.replicate_ceiling()`): the best score a prediction can
#' expect given the measurement's own noise.
#'
#' @inheritParams differential_expression
#' @param metrics Metric names (see [list_metrics()]); `NULL` for all.
#' @param n_splits Random halvings per perturbation.
#' @param seed The seed of the halvings.
#' @return A data frame, one row per perturbation (row names), one column per
#'   metric: the metric between the two halves, averaged over the halvings,
#'   and `reason` where there is none.
#' @export
#' @examples
#' if (linpert_available()) {
#'     sce <- simulate_screen(n_genes = 60, n_singles = 6, n_doubles = 4,
#'                            cells_per_condition = 20, n_control_cells = 60,
#'                            seed = 1)
#'     head(replicate_ceiling(sce, metrics = "l2", n_splits = 2))
#' }
replicate_ceiling <- function(x, condition = "condition", metrics = NULL, n_splits = 10, seed = 0,
                              assay = "logcounts") {
  cells <- .cells_to_python(x, condition, assay)
  .py_call("metrics.replicate_ceiling", cells, condition_key = "condition",
           metrics = if (!is.null(metrics)) as.list(as.character(metrics)),
           n_splits = .check_count(n_splits, "n_splits"), seed = .check_count(seed, "seed", min = 0))
}

#' Scores calibrated between a baseline and the replicate ceiling
#'
#' Each model's mean score per metric, rescaled so that the `reference`
#' model scores 0 and the replicate ceiling 1, with a bootstrap interval over
#' perturbations (Python `linpert.metrics.scaled_scores()`). Calibrated
#' scores can exceed 1 where a model beats the noisy half-versus-half
#' comparison, e.g. on DE overlap when the data's DE genes are few.
#'
#' @param results The `results` table of [run_benchmark()].
#' @param ceiling A table from [replicate_ceiling()].
#' @param reference The model that scores 0 (the paper's baseline: `"mean"`).
#' @param n_boot Bootstrap resamples.
#' @param seed The bootstrap seed.
#' @param level The interval's coverage.
#' @return A data frame, one row per model and metric: the calibrated mean,
#'   its interval, and `reason` where it is `NA`.
#' @export
#' @examples
#' if (linpert_available()) {
#'     sce <- simulate_screen(n_genes = 60, n_singles = 8, n_doubles = 10,
#'                            cells_per_condition = 20, n_control_cells = 60,
#'                            seed = 1)
#'     res <- run_benchmark(pseudobulk(sce), seeds = 1,
#'                          models = c("mean", "additive"), n_genes = 60)
#'     ceiling <- replicate_ceiling(sce, metrics = "l2", n_splits = 2)
#'     calibrated_scores(res$results, ceiling, n_boot = 100)
#' }
calibrated_scores <- function(results, ceiling, reference = "mean", n_boot = 1000, seed = 0, level = 0.95) {
  .check_columns(results, c("model", "perturbation"), "results", "run_benchmark()$results")
  if (!is.data.frame(ceiling) || is.null(rownames(ceiling))) {
    .abort("`ceiling` must be the data frame of replicate_ceiling() (perturbations as row names).")
  }
  .check_string(reference, "reference")
  .py_call("metrics.scaled_scores", results, ceiling, reference = reference,
           n_boot = .check_count(n_boot, "n_boot"), seed = .check_count(seed, "seed", min = 0),
           level = .check_number(level, "level", 0, 1))
}

#' A bootstrap interval of the mean ratio of two paired scores
#'
#' The mean of `values / reference` over perturbations with a percentile
#' bootstrap interval (Python `linpert.metrics.bootstrap_ratio()`), as in the
#' paper's forest plot.
#'
#' @param values,reference Paired numeric vectors (e.g. a model's L2 and the
#'   mean baseline's, perturbation by perturbation).
#' @param n_boot Bootstrap resamples.
#' @param seed The bootstrap seed.
#' @param ci The interval's coverage.
#' @return A named numeric vector: `mean`, `lower`, `upper`, `se`, `n`.
#' @export
#' @examples
#' if (linpert_available()) bootstrap_ratio(c(1, 2, 3, 4), c(2, 2, 4, 4), n_boot = 100)
bootstrap_ratio <- function(values, reference, n_boot = 10000, seed = 0, ci = 0.95) {
  if (!is.numeric(values) || !is.numeric(reference) || length(values) != length(reference) ||
      length(values) < 2) {
    .abort("`values` and `reference` must be paired numeric vectors of the same length (at least 2).")
  }
  .py_call("metrics.bootstrap_ratio", as.double(values), as.double(reference),
           n_boot = .check_count(n_boot, "n_boot"), seed = .check_count(seed, "seed", min = 0),
           ci = .check_number(ci, "ci", 0, 1))
}

# Cell-level data for Python: an SCE as the AnnData of as_anndata(), its condition column named `condition`.
.cells_to_python <- function(x, condition, assay) {
  .check_experiment(x)
  .check_string(condition, "condition")
  labels <- .cell_conditions(x, condition)
  .assay_matrix(x, assay)
  SummarizedExperiment::colData(x) <- S4Vectors::DataFrame(condition = labels, row.names = colnames(x))
  as_anndata(x, X = assay)
}
