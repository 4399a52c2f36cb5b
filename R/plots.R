#' Figures of the benchmark (ggplot2)
#'
#' `plot_l2()`: the L2 error of every scored perturbation per model (jittered
#' points) with each model's mean as a bar, the paper's Fig. 1b / 2b.
#' `plot_tpr_fdp()`: true positive rate against false discovery proportion of
#' the predicted interactions, the paper's Fig. 1c. `plot_forest()`: each
#' model's mean L2 relative to a reference with its bootstrap interval, the
#' paper's Fig. 2c.
#'
#' @param results The `results` table of [run_benchmark()] (or any data frame
#'   with `model` and `l2`).
#' @param metric The column to plot (`"l2"` or `"pearson_delta"`).
#' @param tpr_fdp The `tpr_fdp` table of [run_benchmark()].
#' @param forest A table from [forest_table()].
#' @return A `ggplot` object.
#' @export
#' @examples
#' results <- data.frame(model = rep(c("no_change", "additive"), each = 20), l2 = c(rnorm(20, 5), rnorm(20, 3)))
#' if (requireNamespace("ggplot2", quietly = TRUE)) plot_l2(results)
plot_l2 <- function(results, metric = c("l2", "pearson_delta")) {
  metric <- match.arg(metric)
  .check_columns(results, c("model", metric), "results", "run_benchmark()$results")
  .require_package("ggplot2", "for the figures")
  data <- results[is.finite(results[[metric]]), , drop = FALSE]
  data$model <- factor(data$model, levels = unique(results$model))
  means <- stats::aggregate(data[metric], by = list(model = data$model), FUN = mean)
  ggplot2::ggplot(data, ggplot2::aes(x = .data$model, y = .data[[metric]])) +
    # the jitter's own seed: the same figure every time, and the user's random stream untouched
    ggplot2::geom_point(position = ggplot2::position_jitter(width = 0.2, height = 0, seed = 1),
                        size = 0.8, alpha = 0.6, colour = "grey30") +
    ggplot2::geom_crossbar(data = means, ggplot2::aes(ymin = .data[[metric]], ymax = .data[[metric]]),
                           width = 0.6, colour = "firebrick", fatten = 1.5) +
    ggplot2::labs(x = NULL, y = if (metric == "l2") "L2 distance to observed" else "Pearson delta") +
    ggplot2::theme_minimal(base_size = 11)
}

#' @rdname plot_l2
#' @export
plot_tpr_fdp <- function(tpr_fdp) {
  .check_columns(tpr_fdp, c("model", "fdp", "tpr"), "tpr_fdp", "run_benchmark()$tpr_fdp")
  .require_package("ggplot2", "for the figures")
  ggplot2::ggplot(tpr_fdp, ggplot2::aes(x = .data$fdp, y = .data$tpr, colour = .data$model)) +
    ggplot2::geom_abline(slope = 1, intercept = 0, linetype = "dotted", colour = "grey60") +
    ggplot2::geom_step(linewidth = 0.7) +
    ggplot2::coord_cartesian(xlim = c(0, 1), ylim = c(0, 1)) +
    ggplot2::labs(x = "False discovery proportion", y = "True positive rate", colour = "Model") +
    ggplot2::theme_minimal(base_size = 11)
}

#' @rdname plot_l2
#' @export
plot_forest <- function(forest) {
  .check_columns(forest, c("model", "mean", "lower", "upper"), "forest", "forest_table()")
  .require_package("ggplot2", "for the figures")
  forest$model <- factor(forest$model, levels = rev(unique(forest$model)))
  reference <- if (!is.null(forest$reference)) forest$reference[1] else "reference"
  p <- ggplot2::ggplot(forest, ggplot2::aes(x = .data$mean, y = .data$model)) +
    ggplot2::geom_vline(xintercept = 1, linetype = "dashed", colour = "grey50") +
    ggplot2::geom_errorbarh(ggplot2::aes(xmin = .data$lower, xmax = .data$upper), height = 0.2) +
    ggplot2::geom_point(size = 2) +
    ggplot2::labs(x = paste0("L2 relative to '", reference, "'"), y = NULL) +
    ggplot2::theme_minimal(base_size = 11)
  if ("dataset" %in% names(forest) && length(unique(forest$dataset)) > 1) {
    p <- p + ggplot2::facet_wrap(~dataset, ncol = 1)
  }
  p
}

.check_columns <- function(df, columns, what, hint) {
  if (!is.data.frame(df) || !all(columns %in% names(df))) {
    .abort("`", what, "` must be a data frame with columns ", paste(columns, collapse = ", "), " (e.g. ", hint, ").")
  }
}

# ggplot2's .data pronoun, for R CMD check
utils::globalVariables(".data")

#' Write every figure of a benchmark run
#'
#' Draws every figure that applies to a run folder (the `out` of
#' [run_benchmark()]) into its `figures/` folder, as Python's
#' `linpert.plot.write_figures()` does: the paper's Figs 1a-f, 2a and 2c and its
#' Extended Data figures, among them the dataset overview (ED Fig. 1), the QQ
#' plot of the deviations from additivity (ED Fig. 3a), chosen genes across the
#' doubles (ED Fig. 6), a transfer model against the cell lines' difference
#' (ED Fig. 9) and the mosaic of the top predictions' classes (Fig. 1f).
#'
#' @param run_folder A run folder written by [run_benchmark()] with `out`.
#' @param formats File formats: any of `"png"`, `"svg"`, `"pdf"`.
#' @return The paths written, invisibly.
#' @export
#' @examples
#' if (linpert_available()) {
#'     out <- tempfile("run-")
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 8,
#'                                      n_doubles = 10, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     res <- run_benchmark(pb, seeds = 1, out = out, n_genes = 60)
#'     basename(write_figures(out, formats = "png"))
#' }
write_figures <- function(run_folder, formats = c("png", "svg")) {
  .check_string(run_folder, "run_folder")
  if (!dir.exists(run_folder)) {
    .abort("`run_folder` '", run_folder, "' is not a folder; pass the `out` of run_benchmark().")
  }
  formats <- match.arg(formats, c("png", "svg", "pdf"), several.ok = TRUE)
  invisible(unlist(.as_r(.linpert_bridge()$write_figures(normalizePath(run_folder), as.list(formats)))))
}
