# R and Python agree on the numbers of every shared function (to 1e-12): each R function against the Python
# function it maps to (test-parity.R), called in Python directly on the same data.

bridge_module <- function() unclass(linpert:::.linpert_bridge())$module

# A Python result as R gets it from linpert's functions.
py_values <- function(value) linpert:::.from_python_value(linpert:::.as_r(bridge_module()$`_to_r_value`(value)))

# An R data frame as the DataFrame Python's functions take.
py_frame <- function(df) {
  frame <- linpert:::.frame_to_python(df)
  bridge_module()$frame_from_r(frame$columns, frame$types, frame$names)
}

# The linpert module, its results left Python objects (reticulate 1.28 cannot convert NumPy 2 arrays).
python_linpert <- function() {
  linpert_python()
  reticulate::import("linpert", convert = FALSE)
}

setup_screen <- function() {
  sce <- simulate_screen(n_genes = 120, n_singles = 16, n_doubles = 24, cells_per_condition = 16,
                         n_control_cells = 120, seed = 3)
  pb <- pseudobulk(sce)
  split <- make_split(pb, "double", seed = 1)
  list(sce = sce, pb = pb, split = split, adata = as_anndata(sce))
}

test_that("pseudobulk, predictions and every metric agree with Python's", {
  skip_without_linpert()
  s <- setup_screen()
  lp <- python_linpert()
  py_pb <- lp$pseudobulk(s$adata, progress = FALSE)
  py_bulk <- py_values(py_pb$to_df())
  expect_equal(t(SummarizedExperiment::assay(s$pb, "logcounts"))[rownames(py_bulk), ], as.matrix(py_bulk),
               tolerance = 1e-12, ignore_attr = TRUE)

  pred <- predict(fit_model(s$pb[, s$split$train], "additive"), s$split$test)
  metrics <- c("mae", "mse", "discrimination_l1", "pearson_delta_perturbed", "centroid_accuracy")
  ours <- score_predictions(pred, s$pb, n_genes = 80, metrics = metrics)
  reticulate::py_run_string("
import numpy as np, pandas as pd
from linpert.metrics._registry import Scoring, score_all
from linpert.metrics import top_expressed_genes
from linpert.models import make_model

def expected_scores(pb, train, test, n_genes, names):
    model = make_model('additive').fit(pb[list(train)])
    pred = model.predict(list(test)).to_df()
    obs = pb.to_df()
    genes = obs.columns[top_expressed_genes(obs.loc['ctrl'].to_numpy(), n_genes)]
    others = [c for c in obs.index if c not in set(test) | {'ctrl'}]
    scoring = Scoring(predicted=pred.loc[list(test), genes], observed=obs.loc[list(test), genes],
                      control=obs.loc['ctrl', genes].to_numpy(), reference=obs.loc[others, genes].mean().to_numpy())
    return score_all(scoring, list(names)).rename_axis('perturbation').reset_index()
")
  theirs <- py_values(reticulate::py$expected_scores(py_pb, s$split$train, s$split$test, 80L, as.list(metrics)))
  expect_equal(ours[, c("perturbation", "l2", "pearson_delta", "r2", metrics)],
               theirs[, c("perturbation", "l2", "pearson_delta", "r2", metrics)], tolerance = 1e-12,
               ignore_attr = TRUE)

  reticulate::py_run_string("
from linpert.metrics import l2_by_n, prediction_spread

def expected_by_n(pb, train, test):
    pred = make_model('additive').fit(pb[list(train)]).predict(list(test)).to_df()
    obs = pb.to_df()
    args = pred.to_numpy(), obs.loc[list(test), pred.columns].to_numpy()
    return l2_by_n(*args, obs.loc['ctrl', pred.columns].to_numpy()), prediction_spread(*args)
")
  expected <- reticulate::py$expected_by_n(py_pb, s$split$train, s$split$test)
  expect_equal(l2_by_n(pred, s$pb)$l2, py_values(expected[[1]])$l2, tolerance = 1e-12)
  expect_equal(prediction_spread(pred, s$pb)$sd_pred, py_values(expected[[2]])$sd_pred, tolerance = 1e-12)
})

test_that("DE, the replicate ceiling and calibrated scores agree with Python's", {
  skip_without_linpert()
  s <- setup_screen()
  lp <- python_linpert()
  de <- differential_expression(s$sce)
  py_de <- lp$metrics$differential_expression(s$adata)
  expect_equal(de$fdr, t(as.matrix(py_values(py_de$fdr))), tolerance = 1e-12, ignore_attr = TRUE)
  expect_equal(de$log2_fold_change, t(as.matrix(py_values(py_de$log2_fold_change))), tolerance = 1e-12,
               ignore_attr = TRUE)

  ceiling <- replicate_ceiling(s$sce, metrics = c("l2", "pearson_delta"), n_splits = 2, seed = 4)
  py_ceiling <- lp$metrics$replicate_ceiling(s$adata, metrics = list("l2", "pearson_delta"), n_splits = 2L,
                                             seed = 4L)
  expect_equal(ceiling, py_values(py_ceiling), tolerance = 1e-12)

  res <- run_benchmark(s$pb, seeds = 1, models = c("mean", "additive"), n_genes = 80)
  ours <- calibrated_scores(res$results, ceiling, n_boot = 200, seed = 2)
  theirs <- py_values(lp$metrics$scaled_scores(py_frame(res$results), py_ceiling, reference = "mean",
                                               n_boot = 200L, seed = 2L))
  expect_equal(ours, theirs, tolerance = 1e-12)
})

test_that("interaction calls, their evaluation and the locfdr port agree with Python's and with R's locfdr", {
  skip_without_linpert()
  s <- setup_screen()
  lp <- python_linpert()
  calls <- suppressMessages(suppressWarnings(call_interactions(s$pb, n_genes = 80, backend = "python")))
  py_calls <- lp$interactions$call_interactions(linpert:::.pseudobulk_to_python(s$pb), n_genes = 80L,
                                                backend = "python")
  theirs <- py_values(py_calls$table)
  expect_equal(calls$fdr, theirs$fdr, tolerance = 1e-12)
  expect_identical(calls$class, theirs$class)
  expect_equal(unname(attr(calls, "thresholds")),
               c(reticulate::py_to_r(py_calls$lower), reticulate::py_to_r(py_calls$upper)), tolerance = 1e-12)

  fit <- suppressWarnings(locfdr_port(calls$deviation))
  if (requireNamespace("locfdr", quietly = TRUE)) {
    r_fit <- suppressWarnings(locfdr::locfdr(calls$deviation, plot = 0))
    expect_equal(fit$fdr, unname(r_fit$fdr), tolerance = 1e-12)
    expect_equal(unname(fit$fp0["mlest", ]), unname(r_fit$fp0["mlest", ]), tolerance = 1e-12)
  }

  test <- s$split$test[grepl("+", s$split$test, fixed = TRUE) & !grepl("ctrl", s$split$test)]
  pred <- predict(fit_model(s$pb[, s$split$train], "linear", n_components = 4), test)
  ev <- evaluate_interactions(calls, list(linear = pred), top_k = 40)
  reticulate::py_run_string("
from linpert.interactions import evaluate_interactions
def expected_evaluation(calls, pb, train, test):
    from linpert.models import make_model
    pred = make_model('linear', n_components=4).fit(pb[list(train)]).predict(list(test)).to_df()
    genes = list(dict.fromkeys(calls.table['gene']))
    return evaluate_interactions(calls, {(1, 'linear'): pred[genes]}, top_k=40).auc
")
  py_auc <- py_values(reticulate::py$expected_evaluation(py_calls, linpert:::.pseudobulk_to_python(s$pb),
                                                         s$split$train, test))
  expect_equal(ev$auc$auprc, py_auc$auprc, tolerance = 1e-12)
  expect_equal(ev$auc$roc_auc, py_auc$roc_auc, tolerance = 1e-12)
})

test_that("embeddings and bootstrap intervals agree with Python's", {
  skip_without_linpert()
  s <- setup_screen()
  lp <- python_linpert()
  genes <- rownames(s$pb)[1:20]
  expect_equal(as.matrix(random_embedding(genes, n_components = 3, seed = 5)),
               as.matrix(py_values(lp$embeddings$random_embedding(as.list(genes), n_components = 3L, seed = 5L))),
               tolerance = 1e-12, ignore_attr = TRUE)
  expect_equal(as.matrix(transfer_embedding(s$pb, n_components = 3)),
               as.matrix(py_values(lp$embeddings$transfer_embedding(linpert:::.pseudobulk_to_python(s$pb),
                                                                     n_components = 3L))),
               tolerance = 1e-12, ignore_attr = TRUE)
  values <- c(1.5, 2, 3.25, 4, 5)
  reference <- c(2, 2, 4, 4.5, 5)
  expect_equal(bootstrap_ratio(values, reference, n_boot = 500, seed = 3),
               py_values(lp$metrics$bootstrap_ratio(as.list(values), as.list(reference), n_boot = 500L,
                                                    seed = 3L)),
               tolerance = 1e-12)
})
