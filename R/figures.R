#' Read a benchmark run folder
#'
#' Every table of a run folder (the `out` of [run_benchmark()], or one that
#' `linpert run` wrote), as Python's `linpert.plot.RunFolder` reads them.
#'
#' @param run A run folder, or the result of [run_benchmark()] with `out`.
#' @return A list: `results`, `summary`, `scorecard`, `timings`, `forest`,
#'   `l2_by_n`, `spread`, `calibrated`, `conditions`, `pairs` (the
#'   interaction pairs of a double run), `null` and `no_interactions`; `NULL`
#'   for what the run did not write.
#' @export
#' @examples
#' if (linpert_available()) {
#'     out <- tempfile("run-")
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 8,
#'                                      n_doubles = 10, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     res <- run_benchmark(pb, seeds = 1, out = out, n_genes = 60)
#'     names(read_run(out))
#' }
read_run <- function(run) {
  folder <- .run_folder(run)
  parts <- c("results", "summary", "scorecard", "timings", "forest", "l2_by_n", "spread", "calibrated",
             "conditions", "pairs", "null", "no_interactions")
  stats::setNames(lapply(parts, function(part) .run_data(folder, part)), parts)
}

#' The colours and display names of models in linpert's figures
#'
#' @param models Model names.
#' @return `model_colours()`: a named character vector of colours, the
#'   paper's baselines always in the same colours. `display_name()`: the names
#'   the figures show.
#' @export
#' @examples
#' if (linpert_available()) model_colours(c("additive", "linear", "mine"))
model_colours <- function(models) {
  unlist(.py_call("plot.model_colours", as.list(as.character(models))))
}

#' @rdname model_colours
#' @export
display_name <- function(models) {
  vapply(as.character(models), function(m) .py_call("plot.display_name", m), character(1), USE.NAMES = FALSE)
}

#' The names and captions of the figures of a run
#'
#' @param run A run folder, or the result of [run_benchmark()] with `out`.
#' @return `figure_names()`: the figures [write_figures()] draws for this run.
#'   `figure_captions()`: a named character vector, each figure's caption.
#' @export
#' @examples
#' if (linpert_available()) head(figure_captions(), 3)
figure_names <- function(run) {
  as.character(unlist(.py_call("plot.figure_names", .run_folder(run))))
}

#' @rdname figure_names
#' @export
figure_captions <- function() {
  unlist(.py_call("plot.CAPTIONS"))
}

#' The paper's figures as ggplot2 objects
#'
#' Each function draws one figure of a run folder (the `out` of
#' [run_benchmark()]), from the tables Python's `linpert.plot` draws its own
#' from, and returns a `ggplot` to change or save. Besides [plot_l2()],
#' [plot_forest()] and [plot_tpr_fdp()]:
#' \describe{
#'   \item{`plot_l2_by_n()`}{mean L2 over the `n` genes of highest control
#'     mean (Extended Data Figs 2b, 8b).}
#'   \item{`plot_prediction_spread()`}{the spread of each gene's predictions
#'     across perturbations against the observed spread (ED Fig. 7).}
#'   \item{`plot_resources()`}{fit time and peak memory (ED Fig. 10).}
#'   \item{`plot_scorecard()`}{every metric's mean per model, ranked within
#'     the metric.}
#'   \item{`plot_observed_vs_predicted()`}{one perturbation up close (Fig. 1b).}
#'   \item{`plot_precision_recall_roc()`}{precision-recall and ROC curves of
#'     the interaction predictions (ED Fig. 4).}
#'   \item{`plot_interaction_classes()`}{observed (double, gene) pairs per
#'     class (Fig. 1e).}
#'   \item{`plot_deviation_scatter()`}{predicted against observed deviation
#'     from additivity (Fig. 1f).}
#'   \item{`plot_class_mosaic()`}{the observed classes of each model's top
#'     predicted interactions (Fig. 1f).}
#'   \item{`plot_locfdr_histogram()`}{the deviations with the fitted null and
#'     the thresholds (ED Fig. 3b).}
#'   \item{`plot_deviation_qq()`}{the deviations' quantiles against the
#'     null's (ED Fig. 3a).}
#'   \item{`plot_gene_predictions()`}{chosen genes across the doubles,
#'     observed against predicted (ED Fig. 6).}
#'   \item{`plot_dataset_overview()`}{cells per condition and a PCA of the
#'     profiles by kind (ED Fig. 1; Python draws a UMAP).}
#'   \item{`plot_transfer_error()`}{a transfer model's error against the two
#'     datasets' control difference (ED Fig. 9).}
#' }
#'
#' @param run A run folder, or the result of [run_benchmark()] with `out`.
#' @param perturbation,seed,model Which prediction: `NULL` takes the first
#'   scored perturbation, seed and model (`model` of a transfer model for
#'   `plot_transfer_error()`).
#' @param genes Genes to show; `NULL` takes two with strong interactions.
#' @return A `ggplot` object.
#' @name plot_run
#' @examples
#' if (linpert_available() && requireNamespace("ggplot2", quietly = TRUE)) {
#'     out <- tempfile("run-")
#'     sce <- simulate_screen(n_genes = 200, n_singles = 20, n_doubles = 30,
#'                            cells_per_condition = 20, n_control_cells = 200,
#'                            seed = 1)
#'     res <- run_benchmark(pseudobulk(sce), seeds = 1:2, out = out,
#'                          n_genes = 200)
#'     plot_l2_by_n(out)
#'     plot_deviation_scatter(out)
#' }
NULL

#' @rdname plot_run
#' @export
plot_l2_by_n <- function(run) {
  data <- .required_data(run, "l2_by_n", "the L2 by n table")
  data <- data[data$order == "expression", , drop = FALSE]
  .ggplot(data, ggplot2::aes(x = .data$n, y = .data$l2, colour = .data$model)) +
    ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$l2 - .data$se, ymax = .data$l2 + .data$se, fill = .data$model),
                         alpha = 0.15, colour = NA) +
    ggplot2::geom_line() +
    ggplot2::scale_x_log10() +
    .model_scales(data$model, fill = TRUE) +
    ggplot2::labs(x = "genes of highest control mean (n)", y = "mean L2", colour = "Model", fill = "Model")
}

#' @rdname plot_run
#' @export
plot_prediction_spread <- function(run) {
  data <- .required_data(run, "spread", "the prediction spread table")
  .ggplot(data, ggplot2::aes(x = .data$sd_obs, y = .data$sd_pred, colour = .data$model)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_point(size = 0.6, alpha = 0.5) +
    ggplot2::facet_wrap(~model) +
    .model_scales(data$model) +
    ggplot2::labs(x = "observed SD across perturbations", y = "predicted SD across perturbations") +
    ggplot2::theme(legend.position = "none")
}

#' @rdname plot_run
#' @export
plot_resources <- function(run) {
  data <- .required_data(run, "timings", "timings")
  long <- rbind(
    data.frame(model = data$model, what = "fit time (s)", value = data$fit_seconds),
    data.frame(model = data$model, what = "peak memory (MiB)", value = data$peak_mib)
  )
  .ggplot(long, ggplot2::aes(x = .data$value, y = .data$model, colour = .data$model)) +
    ggplot2::geom_point(size = 2) +
    ggplot2::facet_wrap(~what, scales = "free_x") +
    ggplot2::scale_x_log10() +
    .model_scales(long$model) +
    ggplot2::labs(x = NULL, y = NULL) +
    ggplot2::theme(legend.position = "none")
}

#' @rdname plot_run
#' @export
plot_scorecard <- function(run) {
  card <- .required_data(run, "scorecard", "the scorecard")
  metrics <- intersect(c("l2", "pearson_delta", "r2", list_metrics()$name), names(card))
  better <- .metric_direction(metrics)
  long <- do.call(rbind, lapply(metrics, function(metric) {
    value <- card[[metric]]
    # rank within the metric, best first, whatever the metric's direction
    rank <- rank(if (better[[metric]]) -value else value, na.last = "keep", ties.method = "min")
    data.frame(model = card$model, metric = metric, value = value, rank = rank)
  }))
  .ggplot(long, ggplot2::aes(x = .data$metric, y = .data$model, fill = .data$rank)) +
    ggplot2::geom_tile(colour = "white") +
    ggplot2::geom_text(ggplot2::aes(label = formatC(.data$value, digits = 3, format = "g")), size = 3) +
    ggplot2::scale_fill_gradient(low = "#2b8cbe", high = "#f0f0f0", na.value = "grey90", name = "rank") +
    ggplot2::labs(x = NULL, y = NULL) +
    ggplot2::theme(axis.text.x = ggplot2::element_text(angle = 35, hjust = 1))
}

#' @rdname plot_run
#' @export
plot_observed_vs_predicted <- function(run, perturbation = NULL, seed = NULL, model = NULL) {
  folder <- .run_folder(run)
  results <- .required_data(folder, "results", "results")
  scored <- results[is.finite(results$l2), , drop = FALSE]
  seed <- seed %||% scored$seed[1]
  models <- if (is.null(model)) unique(scored$model) else model
  perturbation <- perturbation %||% scored$perturbation[scored$seed == seed][1]
  data <- do.call(rbind, lapply(models, function(m) {
    paired <- .run_data(folder, "paired", list(seed = seed, model = m))
    if (!perturbation %in% rownames(paired$predicted)) return(NULL)
    data.frame(model = m, observed = unlist(paired$observed[perturbation, ]) - paired$control,
               predicted = unlist(paired$predicted[perturbation, ]) - paired$control)
  }))
  if (is.null(data)) .abort("No model predicted '", perturbation, "' on split seed ", seed, ".")
  .ggplot(data, ggplot2::aes(x = .data$observed, y = .data$predicted, colour = .data$model)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_point(size = 0.8, alpha = 0.6) +
    ggplot2::facet_wrap(~model) +
    .model_scales(data$model) +
    ggplot2::labs(title = perturbation, x = "observed change from control",
                  y = "predicted change from control") +
    ggplot2::theme(legend.position = "none")
}

#' @rdname plot_run
#' @export
plot_precision_recall_roc <- function(run) {
  pairs <- .required_data(run, "pairs", "interaction pairs (a double run with interactions)")
  curves <- .py_call("plot.ranking_curves", pairs)
  long <- rbind(
    data.frame(model = curves$model, seed = curves$seed, curve = "precision-recall", x = curves$recall,
               y = curves$precision),
    data.frame(model = curves$model, seed = curves$seed, curve = "ROC", x = curves$fpr, y = curves$recall)
  )
  .ggplot(long, ggplot2::aes(x = .data$x, y = .data$y, colour = .data$model,
                             group = interaction(.data$model, .data$seed))) +
    ggplot2::geom_line(alpha = 0.8) +
    ggplot2::facet_wrap(~curve) +
    .model_scales(long$model) +
    ggplot2::labs(x = "recall (precision-recall) / false positive rate (ROC)",
                  y = "precision (precision-recall) / recall (ROC)", colour = "Model")
}

#' @rdname plot_run
#' @export
plot_interaction_classes <- function(run) {
  calls <- .required_data(run, "interactions/calls", "interaction calls (a double run with interactions)")
  counts <- as.data.frame(table(class = calls$class[calls$interaction]), stringsAsFactors = FALSE)
  .ggplot(counts, ggplot2::aes(x = stats::reorder(.data$class, -.data$Freq), y = .data$Freq)) +
    ggplot2::geom_col(fill = "grey40") +
    ggplot2::labs(x = NULL, y = "observed interactions ((double, gene) pairs)")
}

#' @rdname plot_run
#' @export
plot_deviation_scatter <- function(run) {
  pairs <- .required_data(run, "pairs", "interaction pairs (a double run with interactions)")
  pairs$predicted_deviation <- pairs$predicted - pairs$additive
  .ggplot(pairs, ggplot2::aes(x = .data$deviation, y = .data$predicted_deviation, colour = .data$interaction)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey70") +
    ggplot2::geom_vline(xintercept = 0, colour = "grey70") +
    ggplot2::geom_point(size = 0.5, alpha = 0.5) +
    ggplot2::facet_wrap(~model) +
    ggplot2::scale_colour_manual(values = c(`FALSE` = "grey60", `TRUE` = "firebrick"), name = "observed\ninteraction") +
    ggplot2::labs(x = "observed deviation from additivity", y = "predicted deviation from additivity")
}

#' @rdname plot_run
#' @export
plot_class_mosaic <- function(run) {
  top <- .required_data(run, "interactions/top_classes", "the top predictions' classes (a double run)")
  counts <- stats::aggregate(list(n = rep(1L, nrow(top))), by = list(model = top$model,
                                                                     class = top$observed_class), FUN = sum)
  .ggplot(counts, ggplot2::aes(x = .data$model, y = .data$n, fill = .data$class)) +
    ggplot2::geom_col(position = "fill") +
    ggplot2::labs(x = NULL, y = "share of the top predicted interactions", fill = "observed class") +
    ggplot2::coord_flip()
}

#' @rdname plot_run
#' @export
plot_locfdr_histogram <- function(run) {
  folder <- .run_folder(run)
  calls <- .required_data(folder, "interactions/calls", "interaction calls (a double run with interactions)")
  null <- .run_data(folder, "null")
  p <- .ggplot(calls, ggplot2::aes(x = .data$deviation)) +
    ggplot2::geom_histogram(bins = 120, fill = "grey60") +
    ggplot2::labs(x = "deviation from additivity", y = "(double, gene) pairs")
  if (!is.null(null)) {
    p <- p + ggplot2::geom_vline(xintercept = c(null$lower, null$upper), colour = "firebrick", linetype = "dashed") +
      ggplot2::labs(subtitle = sprintf("empirical null: delta %.3g, sigma %.3g, p0 %.3g", null$delta, null$sigma,
                                       null$p0))
  }
  p
}

#' @rdname plot_run
#' @export
plot_deviation_qq <- function(run) {
  folder <- .run_folder(run)
  calls <- .required_data(folder, "interactions/calls", "interaction calls (a double run with interactions)")
  null <- .run_data(folder, "null")
  z <- sort(calls$deviation)
  centre <- if (is.null(null)) 0 else null$delta
  spread <- if (is.null(null)) stats::sd(z) else null$sigma
  data <- data.frame(null = stats::qnorm(stats::ppoints(length(z)), centre, spread), observed = z)
  .ggplot(data, ggplot2::aes(x = .data$null, y = .data$observed)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_point(size = 0.5) +
    ggplot2::labs(x = "quantiles of the fitted null", y = "quantiles of the deviations")
}

#' @rdname plot_run
#' @export
plot_gene_predictions <- function(run, genes = NULL) {
  pairs <- .required_data(run, "pairs", "interaction pairs (a double run with interactions)")
  if (is.null(genes)) genes <- .py_call("plot._extended.chosen_genes", pairs)
  data <- pairs[pairs$gene %in% genes, , drop = FALSE]
  if (nrow(data) == 0) .abort("None of the genes ", paste(genes, collapse = ", "), " is a read-out gene of the run.")
  .ggplot(data, ggplot2::aes(x = .data$observed, y = .data$predicted, colour = .data$model)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_point(size = 1, alpha = 0.7) +
    ggplot2::facet_grid(gene ~ model, scales = "free") +
    .model_scales(data$model) +
    ggplot2::labs(x = "observed expression", y = "predicted expression") +
    ggplot2::theme(legend.position = "none")
}

#' @rdname plot_run
#' @export
plot_dataset_overview <- function(run) {
  folder <- .run_folder(run)
  observed <- .required_data(folder, "observed", "the observed profiles")
  conditions <- .run_data(folder, "conditions")
  profiles <- as.matrix(observed)
  pcs <- stats::prcomp(profiles, rank. = 2)$x
  kind <- if (!is.null(conditions)) conditions[rownames(profiles), "kind"] else "perturbation"
  data <- data.frame(PC1 = pcs[, 1], PC2 = pcs[, 2], kind = kind)
  .ggplot(data, ggplot2::aes(x = .data$PC1, y = .data$PC2, colour = .data$kind)) +
    ggplot2::geom_point(size = 1.2, alpha = 0.8) +
    ggplot2::labs(colour = NULL, subtitle = paste(nrow(profiles), "conditions on", ncol(profiles),
                                                   "read-out genes"))
}

#' @rdname plot_run
#' @export
plot_transfer_error <- function(run, model = NULL) {
  folder <- .run_folder(run)
  results <- .required_data(folder, "results", "results")
  candidates <- if (is.null(model)) unique(results$model) else model
  for (m in candidates) {
    reference <- .run_data(folder, "reference_control", list(model = m))
    if (!is.null(reference)) break
  }
  if (is.null(reference)) .abort(folder, " has no model that learned from another dataset (a transfer model).")
  observed <- .required_data(folder, "observed", "the observed profiles")
  shared <- intersect(colnames(observed), names(reference))
  difference <- unlist(observed["ctrl", shared]) - reference[shared]
  scores <- results[results$model == m & is.finite(results$pearson_delta), , drop = FALSE]
  scores$target <- sub("\\+.*$", "", scores$perturbation)
  scores$difference <- difference[scores$target]
  scores <- scores[is.finite(scores$difference), , drop = FALSE]
  .ggplot(scores, ggplot2::aes(x = .data$difference, y = .data$pearson_delta)) +
    ggplot2::geom_point(colour = "#009e73") +
    ggplot2::geom_smooth(method = "lm", formula = y ~ x, se = FALSE, colour = "grey30") +
    ggplot2::labs(title = paste0(display_name(m), ": transfer between the two datasets"),
                  x = "difference of the target's control expression", y = "Pearson delta")
}

# --- helpers ------------------------------------------------------------------------------------------------

.run_folder <- function(run) {
  folder <- if (is.list(run) && !is.null(attr(run, "out"))) attr(run, "out") else run
  if (!is.character(folder) || length(folder) != 1 || !dir.exists(folder)) {
    .abort("`run` must be a run folder or what run_benchmark() returns with `out`; ",
           if (is.list(run)) "this result was not written to a folder (pass `out`)" else "no such folder", ".",
           class = "linpert_file_error")
  }
  normalizePath(folder)
}

.run_data <- function(folder, name, options = NULL) {
  .from_python_value(.as_r(.linpert_bridge()$run_data(.run_folder(folder), name, options)))
}

.required_data <- function(run, name, what) {
  value <- .run_data(run, name)
  if (is.null(value)) .abort("The run has no ", what, ".")
  value
}

.metric_direction <- function(metrics) {
  table <- list_metrics()
  directions <- c(l2 = FALSE, pearson_delta = TRUE, r2 = TRUE,
                  stats::setNames(table$higher_is_better, table$name))
  as.list(directions[metrics])
}

.ggplot <- function(data, mapping) {
  .require_package("ggplot2", "for the figures")
  ggplot2::ggplot(data, mapping) + ggplot2::theme_minimal(base_size = 11)
}

.model_scales <- function(models, fill = FALSE) {
  colours <- model_colours(unique(models))
  scales <- list(ggplot2::scale_colour_manual(values = colours))
  if (fill) scales <- c(scales, list(ggplot2::scale_fill_manual(values = colours)))
  scales
}
