#' Fit a perturbation-effect model
#'
#' Fits one of the paper's models (Python `linpert.models`) on a pseudobulk
#' of training conditions: `"no_change"` predicts the control profile,
#' `"additive"` adds the singles' effects for a double, `"mean"` predicts the
#' mean of the training perturbations, and `"linear"` is the paper's linear
#' model `Y ≈ G W Pᵀ + b`.
#'
#' @param se A pseudobulk `SummarizedExperiment` (genes × conditions) of the
#'   training conditions, `ctrl` included, e.g. `pb[, split$train]`.
#' @param model The model's name (see [list_models()]; the adapters take
#'   their `cells` and inputs as hyperparameters), or a
#'   `linpert_custom_model` from [custom_model()].
#' @param ... Hyperparameters, by name. For `"linear"`: `n_components`,
#'   `ridge`, `seed`, and `gene_embedding` / `perturbation_embedding`: `"pca"`,
#'   `"random"`, a spec string such as `"go"`, or a data frame with gene
#'   symbols as row names (see [random_embedding()],
#'   [transfer_embedding()], [go_embedding()]).
#'
#' @return A `linpert_model`: the fitted Python model and the training
#'   genes. Use [predict()][predict.linpert_model] on it.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 60, n_singles = 6, n_doubles = 4,
#'                          cells_per_condition = 10, n_control_cells = 40, seed = 1)
#'   pb <- pseudobulk(sce)
#'   s <- make_split(pb, "double", seed = 1)
#'   fit <- fit_model(pb[, s$train], "linear", n_components = 3)
#'   pred <- predict(fit, s$test)
#' }
fit_model <- function(se, model = "linear", ...) {
  .check_pseudobulk(se)
  bridge <- .linpert_bridge()
  if (inherits(model, "linpert_custom_model")) {
    if (length(list(...))) .abort("A custom model takes no hyperparameters here; close over them in fit().")
    py_model <- .python_custom_model(model)
    label <- model$label
  } else {
    model <- .check_model_name(model)
    params <- .python_params(.named_options(list(...), "the model's hyperparameters"))
    py_model <- bridge$make_model(model, params)
    label <- model
  }
  bridge$fit_model(py_model, .pseudobulk_to_python(se))
  structure(list(model = py_model, label = label, genes = rownames(se)), class = "linpert_model")
}

.embedding_to_python <- function(df) {
  if (is.null(rownames(df)) || !all(vapply(df, is.numeric, logical(1)))) {
    .abort("An embedding must be a numeric data frame with gene symbols as row names.")
  }
  out <- .frame_to_python(df)
  out$row_names <- rownames(df)
  out
}

#' Predict with a fitted model
#'
#' @param object A `linpert_model` from [fit_model()].
#' @param conditions The conditions to predict (`"A+ctrl"`, `"A+B"`); names
#'   are made canonical.
#' @param ... Unused.
#' @return A `SummarizedExperiment`, training genes × requested conditions,
#'   assay `logcounts` (absolute log expression; `NA` where the model cannot
#'   predict) and `colData(x)$reason` (why a column is `NA`, else `""`).
#' @export
predict.linpert_model <- function(object, conditions, ...) {
  if (!is.character(conditions) || length(conditions) == 0 || anyNA(conditions)) {
    .abort("`conditions` must be condition names, e.g. predict(fit, c('A+B', 'C+ctrl')).")
  }
  res <- .as_r(.linpert_bridge()$predict_model(object$model, as.character(conditions)))
  genes <- unlist(res$var_names)
  conds <- unlist(res$obs_names)
  values <- matrix(.read_doubles(res$x, length(genes) * length(conds)), nrow = length(genes),
                   dimnames = list(genes, conds))
  SummarizedExperiment::SummarizedExperiment(
    assays = list(logcounts = values),
    colData = S4Vectors::DataFrame(reason = as.character(unlist(res$reason)), row.names = conds),
    metadata = list(model = object$label)
  )
}

#' @export
print.linpert_model <- function(x, ...) {
  cat("<linpert_model> ", .as_r(.linpert_bridge()$model_repr(x$model)), " fitted on ",
      length(x$genes), " genes\n", sep = "")
  invisible(x)
}

#' Wrap your own model for linpert
#'
#' A model is two R functions: `fit(train)` receives the training pseudobulk
#' (a `SummarizedExperiment`, genes × conditions, `ctrl` included) and
#' returns any state; `predict(state, conditions)` returns a numeric matrix
#' of absolute log expression, the training genes (in the order of
#' `rownames(train)`) × `conditions` (in the requested order; `NA` where it
#' cannot predict). The wrapped model can be used wherever a model name
#' can: [fit_model()] and [run_benchmark()], where Python calls back into R.
#'
#' A Python class that honours linpert's model contract (`fit(train)`,
#' `predict(conditions)`) can be passed to [run_benchmark()] directly, as a
#' reticulate object.
#'
#' @param fit,predict The two functions.
#' @param label The model's name in result tables.
#' @return A `linpert_custom_model`.
#' @export
#' @examples
#' # predict every perturbation as the control profile plus half the mean effect
#' half_mean <- custom_model(
#'   fit = function(train) {
#'     y <- SummarizedExperiment::assay(train)
#'     list(ctrl = y[, "ctrl"], effect = rowMeans(y[, colnames(train) != "ctrl", drop = FALSE] - y[, "ctrl"]))
#'   },
#'   predict = function(state, conditions) {
#'     matrix(state$ctrl + state$effect / 2, nrow = length(state$ctrl), ncol = length(conditions))
#'   },
#'   label = "half_mean"
#' )
custom_model <- function(fit, predict, label = "custom") {
  if (!is.function(fit) || !is.function(predict)) {
    .abort("`fit` and `predict` must be functions: custom_model(fit = function(train) state, ",
         "predict = function(state, conditions) matrix).")
  }
  .check_string(label, "label")
  structure(list(fit = fit, predict = predict, label = label), class = "linpert_custom_model")
}

#' @export
print.linpert_custom_model <- function(x, ...) {
  cat("<linpert_custom_model> ", x$label, "\n", sep = "")
  invisible(x)
}

# The Python side of a custom model: two callbacks into this R session, numbers as raw buffers both ways.
.python_custom_model <- function(model) {
  state <- new.env(parent = emptyenv())
  fit_callback <- function(train) {
    se <- .pseudobulk_experiment(.as_r(train))
    state$genes <- rownames(se)
    state$value <- model$fit(se)
    NULL
  }
  predict_callback <- function(conditions) {
    conditions <- as.character(unlist(.as_r(conditions)))
    values <- model$predict(state$value, conditions)
    values <- as.matrix(values)
    if (!is.numeric(values) || !identical(dim(values), c(length(state$genes), length(conditions)))) {
      .abort("The predict function of custom model '", model$label, "' must return a numeric matrix of ",
           length(state$genes), " genes x ", length(conditions), " conditions, not ",
           paste(dim(values), collapse = " x "), ".")
    }
    .raw_double(values)
  }
  .linpert_bridge()$custom_model(model$label, fit_callback, predict_callback)
}
