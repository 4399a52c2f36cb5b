# The same numbers as tests/python/test_golden.py, reached through the R API.

test_that("make_split() gives the golden double split of seed 1", {
  skip_without_linpert()
  want <- golden_values()$double_split_seed1
  s <- make_split(colnames(golden_pseudobulk()), "double", seed = 1)
  expect_identical(s$train, want$train)
  expect_identical(s$val, want$val)
  expect_identical(s$test, want$test)
})

test_that("fit_model() + score_predictions() reach the golden L2 and Pearson delta", {
  skip_without_linpert()
  golden <- golden_values()
  pb <- golden_pseudobulk()
  s <- make_split(pb, "double", seed = 1)
  for (model in c("no_change", "additive", "linear")) {
    want <- golden$scores[[model]]
    params <- if (length(want$params)) want$params else list()
    fit <- do.call(fit_model, c(list(pb[, s$train], model), params))
    pred <- predict(fit, want$perturbation)
    scores <- score_predictions(pred, pb, n_genes = length(golden$readout_genes))
    expect_identical(scores$perturbation, want$perturbation)
    expect_equal(scores$l2, want$l2, tolerance = 1e-10, info = model)
    # null in the JSON (NA here) where the prediction is ctrl: no change has no correlation
    expect_identical(is.na(scores$pearson_delta), is.na(want$pearson_delta), info = model)
    expect_equal(scores$pearson_delta[!is.na(want$pearson_delta)], as.numeric(want$pearson_delta[!is.na(want$pearson_delta)]),
                 tolerance = 1e-10, info = model)
  }
})

test_that("the golden no_change L2 is the distance to ctrl, computed in R", {
  golden <- golden_values()
  values <- SummarizedExperiment::assay(golden_pseudobulk())
  genes <- golden$readout_genes
  # the read-out genes are the highest control means
  expect_identical(genes, rownames(values)[order(-values[, "ctrl"])][seq_along(genes)])
  want <- golden$scores$no_change
  l2 <- vapply(want$perturbation, function(p) sqrt(sum((values[genes, p] - values[genes, "ctrl"])^2)), numeric(1))
  expect_equal(unname(l2), want$l2, tolerance = 1e-10)
})

test_that("call_interactions() reaches the golden thresholds and class counts", {
  skip_without_linpert()
  want <- golden_values()$interactions
  expect_message(
    calls <- call_interactions(golden_pseudobulk(), n_genes = want$n_genes, backend = "python"),
    "Python port of locfdr"
  )
  expect_equal(nrow(calls), want$n_pairs)
  expect_equal(unname(attr(calls, "thresholds")), c(want$lower, want$upper), tolerance = 1e-9)
  expect_identical(as.list(attr(calls, "counts")), lapply(want$counts, as.integer))
  expect_identical(attr(calls, "backend"), "python")
  expect_true(all(calls$backend == "python"))
  # independent of Python: the interactions are exactly the deviations beyond the thresholds
  expect_identical(calls$interaction, calls$deviation < want$lower | calls$deviation > want$upper)
  expect_equal(calls$deviation, calls$observed - (calls$single_a + calls$single_b - calls$ctrl), tolerance = 1e-12)
})

test_that("R's locfdr, when installed, gives the golden thresholds too", {
  skip_without_linpert()
  skip_if_not_installed("locfdr")
  want <- golden_values()$interactions
  expect_message(calls <- call_interactions(golden_pseudobulk(), n_genes = want$n_genes), "R's locfdr package")
  expect_identical(attr(calls, "backend"), "r")
  expect_equal(unname(attr(calls, "thresholds")), c(want$lower, want$upper), tolerance = 1e-6)
})
