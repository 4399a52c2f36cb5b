#' Score predictions against observed expression
#'
#' The paper's metrics per perturbation (Python `linpert.metrics.score()`):
#' `l2`, the Euclidean distance between predicted and observed expression;
#' `pearson_delta`, the correlation of the predicted and observed changes
#' from control; and `r2`, the correlation of the absolute values. Genes
#' where the prediction is `NA` are left out.
#'
#' @param predicted A `SummarizedExperiment` from
#'   [predict()][predict.linpert_model], or a genes × perturbations matrix.
#' @param observed The pseudobulk `SummarizedExperiment` holding the
#'   observed conditions and `ctrl`.
#' @param n_genes Score on the `n_genes` highest control means (the paper:
#'   1000); `NULL` for every gene of the prediction.
#' @return A data frame with `perturbation`, `l2`, `pearson_delta`, `r2`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 60, n_singles = 6, n_doubles = 4,
#'                          cells_per_condition = 10, n_control_cells = 40, seed = 1)
#'   pb <- pseudobulk(sce)
#'   s <- make_split(pb, "double", seed = 1)
#'   pred <- predict(fit_model(pb[, s$train], "additive"), s$test)
#'   score_predictions(pred, pb)
#' }
score_predictions <- function(predicted, observed, n_genes = 1000) {
  .check_pseudobulk(observed, "`observed`")
  pred <- if (methods::is(predicted, "SummarizedExperiment")) {
    SummarizedExperiment::assay(predicted, "logcounts")
  } else {
    predicted
  }
  if (!is.matrix(pred) || !is.numeric(pred) || is.null(rownames(pred)) || is.null(colnames(pred))) {
    .abort("`predicted` must be the SummarizedExperiment of predict(), or a numeric genes x perturbations matrix ",
         "with dimnames.")
  }
  missing_conditions <- setdiff(colnames(pred), colnames(observed))
  missing_genes <- setdiff(rownames(pred), rownames(observed))
  if (length(missing_conditions) || length(missing_genes)) {
    .abort("`observed` lacks ", length(missing_conditions), " predicted condition(s) (",
         paste(utils::head(missing_conditions, 3), collapse = ", "), ") and ", length(missing_genes),
         " gene(s); score against the full pseudobulk.")
  }
  obs <- SummarizedExperiment::assay(observed, "logcounts")
  ctrl <- obs[, "ctrl"]
  genes <- rownames(pred)
  if (!is.null(n_genes)) {
    n_genes <- .check_count(n_genes, "n_genes")
    # the highest control means, ties by first occurrence (Python's stable sort)
    top <- order(-ctrl, seq_along(ctrl))[seq_len(min(n_genes, length(ctrl)))]
    genes <- intersect(rownames(obs)[top], genes)
  }
  p <- t(pred[genes, , drop = FALSE])
  o <- t(obs[genes, colnames(pred), drop = FALSE])
  res <- .linpert_bridge()$score(.raw_double(t(p)), .raw_double(t(o)), .raw_double(ctrl[genes]), nrow(p), ncol(p))
  cbind(data.frame(perturbation = colnames(pred), stringsAsFactors = FALSE), .frame_from_python(res))
}

#' The forest plot's table: each model's L2 relative to a reference model
#'
#' Per dataset and model, the mean over perturbations of
#' `l2 / l2_reference` with a bootstrap interval (Python
#' `linpert.metrics.forest_table()`), the paper's Fig. 2c.
#'
#' @param results The `results` table of [run_benchmark()].
#' @param reference The model in the denominator (the paper: `"mean"`).
#' @param n_boot Bootstrap resamples.
#' @param seed The bootstrap seed.
#' @param ci The interval's coverage.
#' @return A data frame: `dataset` (and `split`), `model`, `reference`,
#'   `mean`, `lower`, `upper`, `se`, `n`.
#' @export
#' @examples
#' results <- data.frame(dataset = "d", seed = 1, model = rep(c("mean", "linear"), each = 2),
#'                       perturbation = c("A+ctrl", "B+ctrl"), l2 = c(2, 4, 1, 3))
#' if (linpert_available()) forest_table(results, n_boot = 100)
forest_table <- function(results, reference = "mean", n_boot = 10000, seed = 0, ci = 0.95) {
  if (!is.data.frame(results)) {
    .abort("`results` must be the results data frame of run_benchmark().")
  }
  .check_string(reference, "reference")
  n_boot <- .check_count(n_boot, "n_boot")
  seed <- .check_count(seed, "seed", min = 0)
  ci <- .check_number(ci, "ci", 0, 1)
  .frame_from_python(.linpert_bridge()$forest_table(.frame_to_python(results), reference, n_boot, seed, ci))
}
