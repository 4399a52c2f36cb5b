#' Run the paper's benchmark
#'
#' Splits the conditions with each seed, fits every model on the training
#' conditions, predicts the held-out ones and scores them on the `n_genes`
#' highest control means (Python `linpert.benchmark.run()`). For the double
#' split with enough doubles it also calls genetic interactions and scores
#' each model's predictions of them.
#'
#' @param se A pseudobulk `SummarizedExperiment` (genes × conditions).
#' @param split `"double"` (the paper's Norman split) or `"simulation"`
#'   (GEARS' split of single perturbations).
#' @param seeds The split seeds.
#' @param models A character vector of model names (`"no_change"`,
#'   `"additive"`, `"mean"`, `"linear"`), or a named list whose elements are
#'   names, [custom_model()]s, `linpert_model_spec`s from [model_spec()], or
#'   Python model objects (reticulate); the list names become the labels.
#' @param out A folder where finished fits are stored and reused, or `NULL`.
#' @param n_genes The number of read-out genes.
#' @param progress Show Python's progress bar.
#' @param ... Further options of `linpert.benchmark.run()`, by name
#'   (`dataset`, `common_only`, `interactions`, `metrics`, `locfdr_args`).
#'
#' @return A list of data frames: `results` (one row per dataset, seed,
#'   model and scored perturbation: `l2`, `pearson_delta`, `r2`, ...),
#'   `timings`, `summary`, `scorecard` (see [scorecard()]), and, when interactions were scored, `tpr_fdp`
#'   (TPR against FDP averaged over seeds), `curves`, `auc`, `auc_summary`
#'   and `interactions` (the observed calls, with attributes `thresholds`,
#'   `counts` and `backend`). Inside the runner the empirical null is fitted
#'   by linpert's Python port of locfdr (Python cannot call back into R's
#'   locfdr); use [call_interactions()] for R's own.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 60, n_singles = 8, n_doubles = 10,
#'                          cells_per_condition = 10, n_control_cells = 40, seed = 1)
#'   res <- run_benchmark(pseudobulk(sce), seeds = 1:2, models = c("no_change", "additive", "linear"))
#'   res$summary
#' }
run_benchmark <- function(se, split = c("double", "simulation"), seeds = 1:5,
                          models = c("no_change", "additive", "linear"), out = NULL, n_genes = 1000,
                          progress = FALSE, ...) {
  split <- match.arg(split)
  .check_pseudobulk(se)
  if (!is.numeric(seeds) || length(seeds) == 0 || anyNA(seeds) || any(seeds != round(seeds))) {
    .abort("`seeds` must be whole numbers, e.g. seeds = 1:5.")
  }
  if (!is.null(out)) .check_string(out, "out")
  n_genes <- .check_count(n_genes, "n_genes")
  options <- .named_options(list(...), "linpert.benchmark.run()")
  options$n_genes <- n_genes
  options$progress <- isTRUE(progress)
  py_models <- .python_models(models)
  res <- .as_r(.linpert_bridge()$run_benchmark(
    .pseudobulk_to_python(se), split, as.list(as.integer(seeds)), py_models,
    if (!is.null(out)) normalizePath(out, mustWork = FALSE), options
  ))
  tables <- lapply(res$tables, .frame_from_python)
  if (!is.null(res$interactions)) {
    calls <- .frame_from_python(res$interactions$table)
    calls$backend <- res$interactions$backend
    attr(calls, "thresholds") <- c(lower = res$interactions$lower, upper = res$interactions$upper)
    attr(calls, "counts") <- unlist(res$interactions$counts)
    attr(calls, "backend") <- res$interactions$backend
    tables$interactions <- calls
  }
  attr(tables, "out") <- res$out
  tables
}

#' A model with hyperparameters, for run_benchmark()
#'
#' @param model A model name: `"no_change"`, `"additive"`, `"mean"` or
#'   `"linear"`.
#' @param ... Hyperparameters, as for [fit_model()].
#' @return A `linpert_model_spec`.
#' @export
#' @examples
#' model_spec("linear", n_components = 5)
model_spec <- function(model = c("no_change", "additive", "mean", "linear"), ...) {
  model <- match.arg(model)
  structure(list(model = model, params = .named_options(list(...), "the model's hyperparameters")),
            class = "linpert_model_spec")
}

# Names, specs, custom models and Python objects -> the list of names or (label, model) pairs run() resolves.
.python_models <- function(models) {
  bridge <- .linpert_bridge()
  if (is.character(models)) {
    if (length(models) == 0 || anyNA(models)) .abort("`models` must name at least one model.")
    return(as.list(models))
  }
  if (!is.list(models) || length(models) == 0) {
    .abort("`models` must be model names or a named list of models (names, custom_model(), model_spec()).")
  }
  labels <- names(models)
  if (is.null(labels) || any(!nzchar(labels)) || anyDuplicated(labels)) {
    .abort("A list of `models` needs unique names: list(linear = model_spec(\"linear\"), mine = custom_model(...)).")
  }
  lapply(seq_along(models), function(i) {
    m <- models[[i]]
    model <- if (is.character(m) && length(m) == 1) {
      bridge$make_model(m, list())
    } else if (inherits(m, "linpert_model_spec")) {
      params <- lapply(m$params, function(v) if (is.data.frame(v)) .embedding_to_python(v) else v)
      bridge$make_model(m$model, params)
    } else if (inherits(m, "linpert_custom_model")) {
      m$label <- labels[[i]]
      .python_custom_model(m)
    } else if (inherits(m, "python.builtin.object")) {
      m
    } else {
      .abort("models$", labels[[i]], " is not a model: give a name, model_spec(), custom_model() or a Python model.")
    }
    reticulate::tuple(labels[[i]], model)
  })
}

#' The scorecard of a benchmark: every metric, one row per model
#'
#' One row per dataset, split and model; one column per metric, the paper's
#' (`l2`, `pearson_delta`, `r2`) and the field's (cell-eval's discrimination
#' scores, Systema's `pearson_delta_perturbed` and `centroid_accuracy`,
#' `mae`, `mse`), each the mean over perturbations and seeds; `best_in`
#' lists the metrics where the model is best (Python
#' `linpert.metrics.scorecard()`).
#'
#' @param res What [run_benchmark()] returns.
#' @return A data frame.
#' @export
#' @examples
#' if (linpert_available()) {
#'   bulk <- pseudobulk(simulate_screen("replogle", n_genes = 200, n_singles = 40,
#'                                      cells_per_condition = 10, n_control_cells = 50))
#'   scorecard(run_benchmark(bulk, split = "simulation", seeds = 1, models = c("mean", "linear")))
#' }
scorecard <- function(res) {
  if (!is.list(res) || !is.data.frame(res$results)) {
    .abort("`res` must be what run_benchmark() returns (a list with a `results` data frame).")
  }
  if (is.data.frame(res$scorecard)) return(res$scorecard)
  args <- .frame_to_python(res$results)
  .frame_from_python(.linpert_bridge()$scorecard(args$columns, args$types, args$names))
}
