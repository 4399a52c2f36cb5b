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
#'   (`dataset`, `common_only`, `interactions`, `metrics`, `locfdr_args`,
#'   and `cells`: the screen's cells as a `SingleCellExperiment`, for the
#'   cell-level calibration: DE genes, the replicate ceiling, calibrated
#'   scores).
#'
#' @return A list of data frames: `results` (one row per dataset, seed,
#'   model and scored perturbation: `l2`, `pearson_delta`, `r2`, ...),
#'   `timings`, `summary`, `scorecard` (see [scorecard()]), and, when interactions were scored, `tpr_fdp`
#'   (TPR against FDP averaged over seeds), `curves`, `auc`, `auc_summary`
#'   and `interactions` (the observed calls, with attributes `thresholds`,
#'   `counts` and `backend`); `forest` (each model's L2 relative to the
#'   mean baseline), `calibrated` (scores between the mean baseline and the
#'   replicate ceiling, when `cells` were given), `published` (the paper's
#'   rows for this dataset, when it is one of the paper's), `fidelity` (the
#'   run beside them), `failures` (seed, model, reason of every model that
#'   failed), `interaction_note` (why interactions were or were not scored
#'   as the paper did) and `restriction` (genes or conditions left out). Inside the runner the empirical null is fitted
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
run_benchmark <- function(se, split = c("double", "simulation"), seeds = seq_len(5),
                          models = c("no_change", "additive", "linear"), out = NULL, n_genes = 1000,
                          progress = FALSE, ...) {
  split <- match.arg(split)
  .check_pseudobulk(se)
  if (!is.numeric(seeds) || length(seeds) == 0 || anyNA(seeds) || any(seeds != round(seeds))) {
    .abort("`seeds` must be whole numbers, e.g. seeds = c(1, 2, 3).")
  }
  if (!is.null(out)) .check_string(out, "out")
  n_genes <- .check_count(n_genes, "n_genes")
  options <- .named_options(list(...), "linpert.benchmark.run()")
  # the cells of the screen, for the cell-level calibration (DE, replicate ceiling): an SCE crosses as AnnData
  if (methods::is(options$cells, "SummarizedExperiment")) options$cells <- as_anndata(options$cells)
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
  more <- .from_python_value(res$more)
  tables$forest <- more$forest
  tables$calibrated <- more$calibrated
  tables$published <- more$published
  tables$fidelity <- more$fidelity
  tables$failures <- more$failures
  tables$interaction_note <- more$interaction_note
  tables$restriction <- more$restriction
  attr(tables, "out") <- res$out
  attr(tables, "reused") <- more$reused
  tables
}

#' A model with hyperparameters, for run_benchmark()
#'
#' Any model of the Python package: the paper's baselines (`"no_change"`,
#' `"additive"`, `"mean"`, `"linear"`, `"transfer"`) and the deep-learning
#' adapters (`"gears"`, `"scgpt"`, `"scfoundation"`, `"cpa"`, `"state"`,
#' `"cellflow"`, `"geneformer"`, `"uce"`, `"scbert"`), which run in their own Python
#' environments (see [list_models()] and the Python documentation of
#' `linpert.adapters`).
#'
#' @param model A model name, one of [list_models()]`$name`.
#' @param ... Hyperparameters, by name, as the Python model takes them. A
#'   `SingleCellExperiment` (an adapter's `cells`) crosses as AnnData, a data
#'   frame as a table (an embedding), a named list as a dictionary (e.g.
#'   `runtime = list(environment = "venv")`).
#' @return A `linpert_model_spec`.
#' @export
#' @examples
#' model_spec("linear", n_components = 5)
#' model_spec("gears", epochs = 2, runtime = list(environment = "venv"))
model_spec <- function(model, ...) {
  model <- .check_model_name(model)
  structure(list(model = model, params = .named_options(list(...), "the model's hyperparameters")),
            class = "linpert_model_spec")
}

#' The models linpert can fit
#'
#' @return A data frame: `name`, `kind` (`"baseline"` for the paper's
#'   models, `"adapter"` for the deep-learning models behind the same
#'   contract) and `description` (the first line of the Python class's
#'   documentation).
#' @export
#' @examples
#' list_models()
list_models <- function() {
  data.frame(
    name = c(.BASELINES, .ADAPTERS),
    kind = rep(c("baseline", "adapter"), c(length(.BASELINES), length(.ADAPTERS))),
    description = c(
      "the control profile for every perturbation", "the singles' effects added for a double",
      "the mean of the training perturbations", "the paper's linear model on gene and perturbation embeddings",
      "the linear model with embeddings from another dataset",
      "GEARS (cell-gears)", "scGPT fine-tuned for perturbation prediction",
      "GEARS on scFoundation's gene embeddings (the scFoundation fork)", "CPA (cpa-tools)",
      "STATE, Arc Institute's state-transition model (arc-state)",
      "CellFlow, a flow-matching model of perturbation responses (cellflow-tools)",
      "the linear model on Geneformer's embeddings", "the linear model on UCE's embeddings",
      "the linear model on scBERT's embeddings"
    ),
    stringsAsFactors = FALSE
  )
}

.BASELINES <- c("no_change", "additive", "mean", "linear", "transfer")
.ADAPTERS <- c("gears", "scgpt", "scfoundation", "cpa", "state", "cellflow", "geneformer", "uce", "scbert")

.check_model_name <- function(model) {
  known <- c(.BASELINES, .ADAPTERS)
  if (!is.character(model) || length(model) != 1 || !model %in% known) {
    .abort("`model` must be one of ", paste0("'", known, "'", collapse = ", "), " (see list_models()), not ",
           paste(format(model), collapse = " "), ".")
  }
  model
}

# Hyperparameters for Python: embeddings as tables, cells as AnnData, the rest as they are.
.python_params <- function(params) {
  lapply(params, function(v) {
    if (is.data.frame(v)) .embedding_to_python(v)
    else if (methods::is(v, "SummarizedExperiment")) as_anndata(v)
    else v
  })
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
      bridge$make_model(m$model, .python_params(m$params))
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
