#' Call genetic interactions of double perturbations
#'
#' The paper's interaction calling (spec §4): for every double `A+B` and
#' read-out gene, the deviation from additivity
#' `dev = AB - (A + B - ctrl)`; Efron's local false discovery rate of all
#' deviations with an empirical null (`nulltype = 1`); the thresholds are the
#' deviations whose local fdr is closest to `level` on each side, and the
#' interactions are classified as buffering, synergy, opposite or other.
#'
#' The deviations are computed in Python; the empirical null is fitted **in
#' R**: with `backend = "auto"`, R's own `locfdr::locfdr()` when the
#' `locfdr` package is installed, otherwise linpert's Python port of it
#' (the same numbers; see `linpert.interactions.locfdr`). A message says
#' which backend was used, and the result records it.
#'
#' @param se A pseudobulk `SummarizedExperiment` with `ctrl`, singles
#'   (`A+ctrl`) and doubles (`A+B`).
#' @param n_genes The number of read-out genes: the highest control means.
#' @param level The local fdr level of the thresholds (the paper: 0.05).
#' @param rule `"paper"` (closest to `level` on each side) or `"tail"`
#'   (every deviation beyond has fdr below `level`).
#' @param backend `"auto"`, `"r"` (R's `locfdr`, which must be installed) or
#'   `"python"` (the port).
#' @param ... Further arguments of `locfdr::locfdr()` (e.g. `df`, `bre`,
#'   `pct0`), by name.
#'
#' @return A data frame, one row per (double, gene): `perturbation`,
#'   `gene`, `ctrl`, `single_a`, `single_b`, `observed`, `additive`,
#'   `deviation`, `fdr`, `interaction` (logical), `class`, and `backend`.
#'   Attributes: `thresholds` (`c(lower, upper)`), `counts` (pairs per
#'   class), `backend`, `null` (the null's `delta`, `sigma`, `p0`) and
#'   `level`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 200, n_singles = 20, n_doubles = 30,
#'                          cells_per_condition = 20, n_control_cells = 200, seed = 1)
#'   calls <- call_interactions(pseudobulk(sce), n_genes = 200)
#'   attr(calls, "thresholds")
#'   attr(calls, "counts")
#' }
call_interactions <- function(se, n_genes = 1000, level = 0.05, rule = c("paper", "tail"),
                              backend = c("auto", "r", "python"), ...) {
  .check_pseudobulk(se)
  n_genes <- .check_count(n_genes, "n_genes")
  level <- .check_number(level, "level", 0, 1)
  rule <- match.arg(rule)
  requested <- match.arg(backend)
  backend <- .locfdr_backend(requested)
  options <- .named_options(list(...), "locfdr::locfdr()")
  if (!is.null(options$nulltype) && options$nulltype != 1) {
    .abort("call_interactions() uses the paper's empirical null (nulltype = 1); use locfdr::locfdr() directly ",
         "for other nulls.")
  }
  options$nulltype <- NULL
  bridge <- .linpert_bridge()
  # the deviations' table stays in Python: only the deviations cross, to be fitted here, and the calls come back
  deviations <- .as_r(bridge$deviations(.pseudobulk_to_python(se), n_genes, send = backend == "r"))
  on.exit(bridge$forget(deviations$key), add = TRUE)
  if (backend == "r") {
    null <- .fit_null(.read_doubles(deviations$z, deviations$n), options)
    res <- .as_r(bridge$interaction_calls(deviations$key, .raw_double(null$fdr), null$center, level, rule))
  } else {  # the port fits the null where the deviations are
    res <- .as_r(bridge$python_calls(deviations$key, options, level, rule))
    null <- list(estimates = unlist(res$null))
  }
  port <- if (requested == "python") "linpert's Python port of locfdr (backend = \"python\")" else
    "linpert's Python port of locfdr (R's locfdr is not installed)"
  message("Empirical null of ", deviations$n, " deviations fitted with ",
          if (backend == "r") "R's locfdr package" else port, ".")
  calls <- .frame_from_python(res$table)
  calls$backend <- backend
  counts <- unlist(res$counts)
  structure(
    calls,
    thresholds = c(lower = res$lower, upper = res$upper),
    counts = counts,
    backend = backend,
    null = null$estimates,
    level = level,
    missing_singles = deviations$missing_singles
  )
}

.locfdr_backend <- function(backend) {
  installed <- requireNamespace("locfdr", quietly = TRUE)
  if (backend == "auto") return(if (installed) "r" else "python")
  if (backend == "r" && !installed) {
    .abort("backend = \"r\" needs the R package 'locfdr': install.packages(\"locfdr\"), or use backend = \"python\".",
           class = "linpert_dependency_error")
  }
  backend
}

# The empirical null (nulltype 1) by R's locfdr: the local fdr of every z, the null's centre and its estimates.
.fit_null <- function(z, options) {
  fit <- do.call(locfdr::locfdr, c(list(zz = z, nulltype = 1, plot = 0), options))
  fp0 <- fit$fp0
  list(
    fdr = as.numeric(fit$fdr), center = unname(fp0["mlest", "delta"]),
    estimates = c(delta = unname(fp0["mlest", "delta"]), sigma = unname(fp0["mlest", "sigma"]),
                  p0 = unname(fp0["mlest", "p0"]))
  )
}

#' How well each model's predictions find the observed interactions
#'
#' For every model (and seed), the (double, gene) pairs are ranked by how far
#' the prediction departs from the additive expectation and scored against
#' the observed calls of [call_interactions()] (Python
#' `linpert.interactions.evaluate_interactions()`): TPR against FDP (the
#' paper's Fig. 1c), AUPRC and ROC AUC (Extended Data Fig. 4), the classes
#' of each model's top predictions (Fig. 1f) and their recurrence across
#' seeds. A model whose every prediction equals the additive expectation
#' predicts no interaction and is listed in `no_interactions`, not ranked.
#'
#' @param calls What [call_interactions()] returns.
#' @param predictions A named list, one element per model: a prediction
#'   (the `SummarizedExperiment` of [predict()][predict.linpert_model], or a
#'   genes × doubles matrix), or a list of them named by split seed.
#' @param top_k Pairs per model in `top_classes` (the paper: 500).
#' @param recurrence_k Pairs per model and seed counted in `recurrence`.
#' @return A list of data frames: `pairs`, `curves`, `tpr_fdp`, `auc`,
#'   `auc_summary`, `top_classes`, `recurrence`; `thresholds`;
#'   `no_interactions`.
#' @export
#' @examples
#' if (linpert_available()) {
#'     sce <- simulate_screen(n_genes = 200, n_singles = 20, n_doubles = 30,
#'                            cells_per_condition = 20, n_control_cells = 200,
#'                            seed = 1)
#'     pb <- pseudobulk(sce)
#'     calls <- call_interactions(pb, n_genes = 200, backend = "python")
#'     s <- make_split(pb, "double", seed = 1)
#'     fits <- list(additive = "additive", linear = "linear")
#'     predictions <- lapply(fits, function(m) predict(fit_model(pb[, s$train], m), s$test))
#'     evaluate_interactions(calls, predictions, top_k = 50)$auc
#' }
evaluate_interactions <- function(calls, predictions, top_k = 500, recurrence_k = 100) {
  .check_columns(calls, c("perturbation", "gene", "deviation", "interaction", "class"), "calls",
                 "call_interactions()")
  thresholds <- attr(calls, "thresholds")
  if (length(thresholds) != 2) .abort("`calls` lost its thresholds attribute: pass call_interactions()'s result.")
  if (!is.list(predictions) || is.null(names(predictions)) || any(!nzchar(names(predictions)))) {
    .abort("`predictions` must be a list named by model, e.g. list(additive = predict(fit, doubles)).")
  }
  flat <- list()
  for (model in names(predictions)) {
    by_seed <- predictions[[model]]
    if (!is.list(by_seed) || methods::is(by_seed, "SummarizedExperiment")) by_seed <- list(`1` = by_seed)
    for (seed in names(by_seed) %||% as.character(seq_along(by_seed))) {
      values <- by_seed[[seed]]
      values <- .prediction_values(values)
      if (!is.matrix(values) || !is.numeric(values) || is.null(dimnames(values))) {
        .abort("predictions$", model, " must be a prediction of predict() or a genes x doubles matrix with dimnames.")
      }
      flat[[length(flat) + 1]] <- list(as.integer(seed), model, .raw_double(values), colnames(values), rownames(values))
    }
  }
  table <- calls[, setdiff(colnames(calls), "backend"), drop = FALSE]
  res <- .from_python_value(.as_r(.linpert_bridge()$evaluate_interactions(
    .frame_to_python(table), thresholds[[1]], thresholds[[2]], flat, .check_count(top_k, "top_k"),
    .check_count(recurrence_k, "recurrence_k")
  )))
  res <- unclass(res)
  res$thresholds <- unlist(res$thresholds)
  res$no_interactions <- as.character(unlist(res$no_interactions))
  res
}

`%||%` <- function(a, b) if (is.null(a)) b else a

#' Efron's local false discovery rate, by linpert's Python port of locfdr
#'
#' The port of R's `locfdr::locfdr()` (version 1.1-8) that linpert uses where
#' R is not available; it gives R's numbers (to 1e-12 on the paper's
#' interaction scores). From R, `locfdr::locfdr()` itself is the natural
#' choice; this function exists to compare the two, or where `locfdr` is not
#' installed.
#'
#' @param zz The z-values.
#' @param ... Arguments of `locfdr::locfdr()` by name (`bre`, `df`, `pct`,
#'   `pct0`, `nulltype`, `type`, `mlests`, `mult`).
#' @return A list like `locfdr::locfdr()`'s: `fdr`, `fp0` (a matrix with rows
#'   `thest`, `theSD`, `mlest`, `mleSD`, `cmest`, `cmeSD` and columns `delta`,
#'   `sigma`, `p0`), `Efdr`, `cdf1`, `mat`, `z.2`, `mult`, the warnings R's
#'   locfdr would give (`warnings`) and the settings (`call`).
#' @export
#' @examples
#' if (linpert_available()) {
#'     set.seed(1)
#'     z <- c(rnorm(3000), rnorm(100, 3))
#'     fit <- locfdr_port(z)
#'     fit$fp0["mlest", ]
#' }
locfdr_port <- function(zz, ...) {
  if (!is.numeric(zz) || length(zz) < 10 || any(!is.finite(zz))) {
    .abort("`zz` must be at least 10 finite numbers.")
  }
  options <- .named_options(list(...), "locfdr_port()")
  fit <- unclass(do.call(.py_call, c(list("interactions.locfdr", as.double(zz), backend = "python"), options)))
  fp0 <- as.matrix(fit$fp0)
  list(fdr = fit$fdr, fp0 = fp0, Efdr = fit$Efdr, cdf1 = fit$cdf1, mat = fit$mat, z.2 = fit$z_2,
       mult = fit$mult, warnings = as.character(unlist(fit$warnings)), call = fit$call)
}
