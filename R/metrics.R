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
#' @param metrics `NULL` for the paper's three, or metric names (see
#'   [list_metrics()]) to compute beside them.
#' @param reference For Systema's metrics: the mean of the training
#'   perturbations, a numeric vector named by gene; `NULL` takes the mean of
#'   the conditions in `observed` that are neither predicted nor `ctrl`.
#' @return A data frame with `perturbation`, `l2`, `pearson_delta`, `r2`
#'   and a column per further metric.
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
score_predictions <- function(predicted, observed, n_genes = 1000, metrics = NULL, reference = NULL) {
  .check_pseudobulk(observed, "`observed`")
  pred <- .prediction_values(predicted)
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
  if (is.null(metrics)) {
    res <- .linpert_bridge()$score(.raw_double(t(p)), .raw_double(t(o)), .raw_double(ctrl[genes]), nrow(p), ncol(p))
    return(cbind(data.frame(perturbation = colnames(pred), stringsAsFactors = FALSE), .frame_from_python(res)))
  }
  .check_metric_names(metrics)
  reference <- .reference_profile(reference, observed, colnames(pred), genes)
  .frame_from_python(.linpert_bridge()$score_metrics(
    .raw_double(t(p)), .raw_double(t(o)), .raw_double(ctrl[genes]), .raw_double(reference),
    colnames(pred), as.character(genes), as.list(setdiff(metrics, c("l2", "pearson_delta", "r2")))
  ))
}

# The mean of the training perturbations (Systema's reference) on `genes`: given as a vector, or the mean of the
# observed conditions that are neither predicted nor ctrl.
.reference_profile <- function(reference, observed, predicted, genes) {
  if (is.null(reference)) {
    train <- setdiff(colnames(observed), c(predicted, "ctrl"))
    if (length(train) == 0) {
      .abort("`observed` holds no conditions besides the predicted ones and ctrl, so the reference (the mean of ",
             "the training perturbations) is unknown: pass `reference`, a numeric vector named by gene.")
    }
    obs <- SummarizedExperiment::assay(observed, "logcounts")
    return(rowMeans(obs[genes, train, drop = FALSE]))
  }
  if (!is.numeric(reference) || is.null(names(reference)) || !all(genes %in% names(reference))) {
    .abort("`reference` must be a numeric vector named by gene that covers the scored genes.")
  }
  reference[genes]
}

.check_metric_names <- function(metrics) {
  known <- c("l2", "pearson_delta", "r2", list_metrics()$name)
  unknown <- setdiff(metrics, known)
  if (!is.character(metrics) || length(unknown)) {
    .abort("Unknown metric(s) ", paste0("'", unknown, "'", collapse = ", "), ": use the names of list_metrics() ",
           "(or register one with register_metric()).")
  }
}

#' The metrics linpert computes, and your own
#'
#' `list_metrics()`: every metric beyond the paper's `l2`, `pearson_delta`
#' and `r2` (which are always computed): cell-eval's discrimination scores,
#' Systema's `pearson_delta_perturbed` and `centroid_accuracy`, `mae`, `mse`,
#' the DE overlap (from cells), and any registered with `register_metric()`.
#' `register_metric()`: a metric written in R, computed by [run_benchmark()]
#' (its `metrics` option) and [score_predictions()] beside the others.
#'
#' @param name The metric's name (its column in the results).
#' @param fun `function(predicted, observed, control, reference)`: the first
#'   two are genes × perturbations matrices on the read-out genes, the last
#'   two numeric vectors over those genes (the control profile and the mean
#'   of the training perturbations). It returns one number per perturbation.
#' @param higher_is_better Whether a larger value is better.
#' @param description One line for the scorecard and the report.
#' @param replace Replace a metric of this name registered before.
#' @return `list_metrics()`: a data frame (`name`, `higher_is_better`,
#'   `description`, `needs_cells`). `register_metric()`: `name`, invisibly.
#' @export
#' @examples
#' if (linpert_available()) {
#'     register_metric("max_abs_error", function(predicted, observed, control, reference) {
#'         apply(abs(predicted - observed), 2, max)
#'     }, higher_is_better = FALSE, description = "largest error over the read-out genes", replace = TRUE)
#'     list_metrics()[, c("name", "higher_is_better")]
#' }
list_metrics <- function() {
  .frame_from_python(.linpert_bridge()$metric_table())
}

#' @rdname list_metrics
#' @export
register_metric <- function(name, fun, higher_is_better, description = "", replace = FALSE) {
  .check_string(name, "name")
  if (!is.function(fun)) .abort("`fun` must be a function(predicted, observed, control, reference).")
  if (!is.logical(higher_is_better) || length(higher_is_better) != 1 || is.na(higher_is_better)) {
    .abort("`higher_is_better` must be TRUE or FALSE.")
  }
  callback <- function(predicted, observed, control, reference, rows, genes) {
    rows <- as.character(unlist(.as_r(rows)))
    genes <- as.character(unlist(.as_r(genes)))
    shape <- function(x) matrix(.read_doubles(.as_r(x)), nrow = length(genes), dimnames = list(genes, rows))
    values <- fun(shape(predicted), shape(observed), stats::setNames(.read_doubles(.as_r(control)), genes),
                  stats::setNames(.read_doubles(.as_r(reference)), genes))
    if (!is.numeric(values) || length(values) != length(rows)) {
      .abort("Metric '", name, "' must return one number per perturbation (", length(rows), "), not ",
             length(values), " values of type ", typeof(values), ".")
    }
    .raw_double(values)
  }
  .linpert_bridge()$register_r_metric(name, callback, higher_is_better, description, isTRUE(replace))
  invisible(name)
}

#' The L2 error over the top n genes, and the spread of predictions
#'
#' `l2_by_n()`: the L2 distance between predicted and observed expression on
#' the `n` genes of highest control mean, for a grid of `n` (the paper's
#' Extended Data Figs 2b and 8b). `prediction_spread()`: how much the
#' predictions vary across perturbations compared with the observations
#' (Extended Data Fig. 7).
#'
#' @inheritParams score_predictions
#' @param order `"expression"` (genes by control mean, the paper's) or
#'   `"variance"`.
#' @return A data frame: for `l2_by_n()`, one row per perturbation and `n`
#'   (`perturbation`, `n`, `l2`); for `prediction_spread()`, one row per gene
#'   (`gene`, `sd_pred`, `sd_obs`).
#' @export
#' @examples
#' if (linpert_available()) {
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 6,
#'                                      n_doubles = 4, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     s <- make_split(pb, "double", seed = 1)
#'     pred <- predict(fit_model(pb[, s$train], "additive"), s$test)
#'     head(l2_by_n(pred, pb))
#'     head(prediction_spread(pred, pb))
#' }
l2_by_n <- function(predicted, observed, order = c("expression", "variance")) {
  order <- match.arg(order)
  m <- .paired_matrices(predicted, observed)
  table <- .py_call("metrics.l2_by_n", m$predicted, m$observed, m$control, order = order)
  table$perturbation <- rownames(m$predicted)[table$perturbation + 1L]  # Python numbers the rows from 0
  table
}

#' @rdname l2_by_n
#' @export
prediction_spread <- function(predicted, observed) {
  m <- .paired_matrices(predicted, observed)
  cbind(gene = colnames(m$predicted), .py_call("metrics.prediction_spread", m$predicted, m$observed))
}

#' The read-out genes: the highest control means
#'
#' @param se A pseudobulk `SummarizedExperiment` with `ctrl`.
#' @param n_genes How many (the paper: 1000).
#' @return Gene names, highest control mean first (ties by position).
#' @export
#' @examples
#' if (linpert_available()) {
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 6,
#'                                      n_doubles = 4, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     top_expressed_genes(pb, 5)
#' }
top_expressed_genes <- function(se, n_genes = 1000) {
  .check_pseudobulk(se)
  ctrl <- SummarizedExperiment::assay(se, "logcounts")[, "ctrl"]
  index <- .py_call("metrics.top_expressed_genes", as.double(ctrl), n_genes = .check_count(n_genes, "n_genes"))
  rownames(se)[as.integer(index) + 1L]
}

# A prediction's values, genes x perturbations: the assay of predict()'s SummarizedExperiment, or a matrix as given.
.prediction_values <- function(predicted) {
  if (methods::is(predicted, "SummarizedExperiment")) SummarizedExperiment::assay(predicted, "logcounts") else predicted
}

# Predicted and observed as Python arrays take them: perturbations x genes, rows and genes matched, and ctrl.
.paired_matrices <- function(predicted, observed) {
  .check_pseudobulk(observed, "`observed`")
  pred <- .prediction_values(predicted)
  if (!is.matrix(pred) || !is.numeric(pred) || is.null(rownames(pred)) || is.null(colnames(pred)) ||
      !all(rownames(pred) %in% rownames(observed)) || !all(colnames(pred) %in% colnames(observed))) {
    .abort("`predicted` must be the SummarizedExperiment of predict(), or a numeric genes x perturbations matrix ",
           "whose genes and perturbations `observed` holds.")
  }
  obs <- SummarizedExperiment::assay(observed, "logcounts")
  # genes in the order of the control means, as the Python functions expect their columns
  genes <- rownames(pred)
  list(predicted = t(pred[genes, , drop = FALSE]), observed = t(obs[genes, colnames(pred), drop = FALSE]),
       control = as.double(obs[genes, "ctrl"]))
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
