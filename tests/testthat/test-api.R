# The R API on a small simulated screen: data, splits, models, scores, benchmark, embeddings, conversion, figures.

test_that("simulate_screen() returns a SingleCellExperiment in GEARS' format with its truth", {
  skip_without_linpert()
  sce <- small_screen()$sce
  expect_s4_class(sce, "SingleCellExperiment")
  expect_identical(dim(sce), c(150L, 100L + 36L * 15L))
  expect_s4_class(SummarizedExperiment::assay(sce, "logcounts"), "dgCMatrix")
  expect_identical(colnames(SummarizedExperiment::colData(sce))[1:5],
                   c("condition", "cell_type", "dose_val", "control", "condition_name"))
  expect_identical(sum(sce$condition == "ctrl"), 100L)
  # log1p of counts scaled to a common total: expm1 of logcounts sums to the same total in every cell
  totals <- Matrix::colSums(expm1(SummarizedExperiment::assay(sce, "logcounts")))
  expect_equal(unname(totals / stats::median(totals)), rep(1, ncol(sce)), tolerance = 1e-4)
  truth <- S4Vectors::metadata(sce)$truth
  expect_setequal(names(truth$interactions), c("condition", "gene", "class", "additive", "deviation"))
  expect_identical(dim(truth$expected), c(150L, 37L))
  expect_error(simulate_screen("nope"), "'arg' should be one of")
  expect_error(simulate_screen(seed = -1), "`seed` must be one whole number >= 0")
})

test_that("make_split() splits and write_split()/read_split() round-trip, with checked arguments", {
  skip_without_linpert()
  pb <- small_screen()$pb
  s <- make_split(pb, "double", seed = 2)
  expect_s3_class(s, "linpert_split")
  kinds <- SummarizedExperiment::colData(pb)$kind
  expect_true(all(colnames(pb)[kinds %in% c("control", "single")] %in% s$train))
  expect_setequal(c(s$train, s$val, s$test), colnames(pb))
  expect_length(intersect(s$test, s$train), 0)
  doubles <- colnames(pb)[SummarizedExperiment::colData(pb)$kind == "double"]
  expect_equal(length(s$test) + length(s$val), length(doubles) - length(doubles) %/% 2)
  path <- tempfile(fileext = ".json")
  expect_identical(write_split(s, path), normalizePath(path))
  expect_identical(read_split(path), s)
  expect_identical(make_split(pb, "double", seed = 2), s)  # deterministic
  expect_error(make_split(1:3), "`conditions` must be condition names")
  expect_error(make_split(pb, "random"), "'arg' should be one of")
  expect_error(write_split(list(), path), "`split` must come from make_split")
  expect_error(read_split(tempfile()), "No split file at")
})

test_that("fit_model() and predict() follow the model contract; no_change and additive match closed forms", {
  skip_without_linpert()
  pb <- small_screen()$pb
  values <- SummarizedExperiment::assay(pb)
  s <- make_split(pb, "double", seed = 1)
  pred <- predict(fit_model(pb[, s$train], "no_change"), s$test)
  expect_s4_class(pred, "SummarizedExperiment")
  expect_identical(colnames(pred), s$test)
  expect_equal(unname(SummarizedExperiment::assay(pred)), unname(matrix(values[, "ctrl"], nrow(pb), length(s$test))))
  add <- predict(fit_model(pb[, s$train], "additive"), s$test[1])
  genes <- strsplit(s$test[1], "+", fixed = TRUE)[[1]]
  expected <- values[, paste0(genes[1], "+ctrl")] + values[, paste0(genes[2], "+ctrl")] - values[, "ctrl"]
  expect_equal(SummarizedExperiment::assay(add)[, 1], expected, tolerance = 1e-12)
  lin <- predict(fit_model(pb[, s$train], "linear", n_components = 4), c(s$test[1], "NOTAGENE+ctrl"))
  expect_true(all(is.finite(SummarizedExperiment::assay(lin)[, 1])))
  expect_true(all(is.na(SummarizedExperiment::assay(lin)[, 2])))
  expect_match(lin$reason[2], "embedding")
  expect_identical(lin$reason[1], "")
  expect_error(fit_model(pb, "deep"), "`model` must be one of", class = "linpert_input_error")
  expect_error(fit_model(SummarizedExperiment::assay(pb)), "must be a pseudobulk SummarizedExperiment")
  expect_error(fit_model(pb[, s$train], "linear", n_components = -1), "n_components")
  expect_error(predict(fit_model(pb[, s$train], "mean"), 3), "`conditions` must be condition names")
})

test_that("score_predictions() computes L2 and Pearson delta as R does", {
  skip_without_linpert()
  pb <- small_screen()$pb
  values <- SummarizedExperiment::assay(pb)
  s <- make_split(pb, "double", seed = 1)
  pred <- predict(fit_model(pb[, s$train], "mean"), s$test)
  scores <- score_predictions(pred, pb, n_genes = 40)
  genes <- rownames(values)[order(-values[, "ctrl"])][1:40]
  p <- SummarizedExperiment::assay(pred)[genes, ]
  o <- values[genes, s$test]
  expect_equal(scores$l2, unname(sqrt(colSums((p - o)^2))), tolerance = 1e-12)
  expect_equal(scores$pearson_delta, unname(diag(stats::cor(p - values[genes, "ctrl"], o - values[genes, "ctrl"]))),
               tolerance = 1e-12)
  expect_error(score_predictions(pred, pb[, 1:3]), "`observed` lacks")
})

test_that("run_benchmark() returns the tables, takes custom models, and feeds forest_table() and the figures", {
  skip_without_linpert()
  skip_if_not_installed("ggplot2")
  pb <- small_screen()$pb
  ctrl_only <- custom_model(
    fit = function(train) SummarizedExperiment::assay(train)[, "ctrl"],
    predict = function(state, conditions) matrix(state, length(state), length(conditions)),
    label = "ignored"
  )
  res <- run_benchmark(pb, seeds = 1:2, n_genes = 100,
                       models = list(no_change = "no_change", additive = "additive",
                                     linear = model_spec("linear", n_components = 4), mine = ctrl_only))
  expect_true(all(c("results", "timings", "summary", "tpr_fdp", "interactions") %in% names(res)))
  expect_setequal(unique(res$results$model), c("no_change", "additive", "linear", "mine"))
  # the R model that predicts ctrl scores exactly as no_change
  mine <- res$results[res$results$model == "mine", ]
  base <- res$results[res$results$model == "no_change", ]
  expect_equal(mine$l2, base$l2, tolerance = 1e-12)
  expect_identical(attr(res$interactions, "backend"), "python")
  expect_true(all(res$tpr_fdp$tpr >= 0 & res$tpr_fdp$tpr <= 1))

  forest <- forest_table(res$results, reference = "no_change", n_boot = 200)
  expect_setequal(forest$model, c("additive", "linear", "mine"))
  expect_equal(forest$mean[forest$model == "mine"], 1)
  ratio <- res$results$l2[res$results$model == "additive"] / base$l2
  expect_equal(forest$mean[forest$model == "additive"], mean(ratio), tolerance = 1e-12)
  expect_error(forest_table(res$results, reference = "nope", n_boot = 10), "reference model 'nope'")

  for (p in list(plot_l2(res$results), plot_tpr_fdp(res$tpr_fdp), plot_forest(forest))) {
    expect_s3_class(p, "ggplot")
    expect_silent(ggplot2::ggplot_build(p))
  }
  expect_error(plot_l2(data.frame(x = 1)), "must be a data frame with columns model, l2")
  expect_error(run_benchmark(pb, models = list("no_change")), "needs unique names")
  expect_error(run_benchmark(pb, seeds = 1.5), "`seeds` must be whole numbers")
})

test_that("write_figures() draws a run folder's figures, the Extended Data ones among them", {
  skip_without_linpert()
  pb <- small_screen()$pb
  out <- file.path(tempfile("run"))
  res <- suppressWarnings(run_benchmark(pb, seeds = 1, n_genes = 100, out = out,
                                        models = list(no_change = "no_change", additive = "additive")))
  paths <- write_figures(out, formats = "png")
  expect_true(all(file.exists(paths)))
  drawn <- sub("\\.png$", "", basename(paths))
  expect_true(all(c("dataset_overview", "deviation_qq", "class_mosaic", "gene_predictions", "tpr_fdp") %in% drawn))
  expect_error(write_figures(file.path(out, "nothing")), "is not a folder")
})

test_that("go_embedding() with igraph in R matches igraph's golden values and the Python backend", {
  skip_without_linpert()
  skip_if_not_installed("igraph")
  golden <- jsonlite::fromJSON(system.file("extdata", "igraph", "embedding_golden.json", package = "linpert"))
  case <- golden$paper_pipeline_jaccard
  edges <- as.data.frame(case$edges)
  emb <- go_embedding(edges, n_components = 2)
  expect_identical(attr(emb, "backend"), "igraph")
  expect_identical(rownames(emb), case$rownames)
  expect_equal(unname(as.matrix(emb)), unname(case$X_sign_normalized), tolerance = 1e-8)
  expect_equal(attr(emb, "eigenvalues"), case$D, tolerance = 1e-8)
  py <- go_embedding(edges, n_components = 2, backend = "python")
  expect_equal(as.matrix(py), as.matrix(emb), tolerance = 1e-8)
  expect_error(go_embedding(data.frame(a = 1)), "columns source, target, importance")
  expect_error(go_embedding(edges, n_components = 500), "must be below the number of genes")
})

test_that("random and transfer embeddings plug into the linear model", {
  skip_without_linpert()
  pb <- small_screen()$pb
  r1 <- random_embedding(c("A", "B"), n_components = 3, seed = 1)
  r2 <- random_embedding("B", n_components = 3, seed = 1)
  expect_equal(unlist(r1["B", ]), unlist(r2["B", ]))
  other <- pseudobulk(simulate_screen("norman", n_genes = 150, n_singles = 12, n_doubles = 0,
                                      cells_per_condition = 10, n_control_cells = 50, seed = 6))
  transfer <- transfer_embedding(other, n_components = 3)
  expect_identical(ncol(transfer), 3L)
  s <- make_split(pb, "double", seed = 1)
  fit <- fit_model(pb[, s$train], "linear", n_components = 3, perturbation_embedding = random_embedding(
    rownames(pb), n_components = 3, seed = 1))
  expect_true(all(is.finite(SummarizedExperiment::assay(predict(fit, s$test)))))
  expect_error(fit_model(pb[, s$train], "linear", perturbation_embedding = data.frame(a = "x")), "numeric data frame")
})

test_that("as_anndata() and as_sce() round-trip assays, annotations and the sparse layout", {
  skip_without_linpert()
  sce <- small_screen()$sce
  adata <- as_anndata(sce)
  expect_identical(reticulate::py_to_r(reticulate::py_get_attr(adata, "n_obs")), ncol(sce))
  back <- as_sce(adata)
  expect_s4_class(SummarizedExperiment::assay(back, "logcounts"), "dgCMatrix")
  expect_equal(SummarizedExperiment::assay(back, "logcounts"), SummarizedExperiment::assay(sce, "logcounts"))
  expect_equal(as.matrix(SummarizedExperiment::assay(back, "counts")), as.matrix(SummarizedExperiment::assay(sce, "counts")))
  expect_identical(back$condition, sce$condition)
  expect_identical(SummarizedExperiment::rowData(back)$gene_name, SummarizedExperiment::rowData(sce)$gene_name)
  expect_error(as_anndata(sce, X = "normcounts"), "x has no assay 'normcounts'")
  expect_error(as_sce(list()), "must be a Python AnnData")
})

test_that("load_dataset() says how to get a dataset that is not cached", {
  skip_without_linpert()
  empty <- tempfile("cache-")
  dir.create(empty)
  expect_false(dataset_cached("adamson", cache_dir = empty))
  expect_error(load_dataset("adamson", cache_dir = empty), "download = TRUE")
  expect_error(load_dataset("imaginary"), "'arg' should be one of")
  expect_error(read_gears(tempfile()), "does not exist")
})

test_that("published_results() returns the paper's numbers as a data frame", {
  skip_without_linpert()
  norman <- published_results("norman")
  expect_s3_class(norman, "data.frame")
  expect_identical(names(norman), c("dataset", "split", "seed", "model", "perturbation", "set", "l2",
                                    "pearson_delta", "r2", "figure"))
  means <- tapply(norman$l2, norman$model, mean)
  expect_equal(unname(means["additive"] / means["no_change"]), 0.4925, tolerance = 1e-3)
  expect_setequal(unique(published_results()$dataset), c("norman", "adamson", "replogle_k562", "replogle_rpe1"))
  expect_error(published_results("nope"), "published no results for 'nope'")
})

test_that("scorecard() gives every metric per model, the paper's and the field's", {
  skip_without_linpert()
  bulk <- pseudobulk(simulate_screen("replogle", n_genes = 200, n_singles = 40, cells_per_condition = 10,
                                     n_control_cells = 50, seed = 1))
  res <- run_benchmark(bulk, split = "simulation", seeds = 1, models = c("mean", "linear"))
  card <- scorecard(res)
  expect_setequal(card$model, c("mean", "linear"))
  expect_true(all(c("l2", "pearson_delta", "discrimination_l1", "centroid_accuracy", "mae", "best_in") %in% names(card)))
  again <- scorecard(list(results = res$results))  # computed from the results alone
  expect_equal(again$discrimination_l1, card$discrimination_l1)
  expect_error(scorecard(list()), "must be what run_benchmark\\(\\) returns")
})

test_that("gears_fork() unpacks the GEARS folder of scFoundation's archive once, as the paper ran GEARS on Norman", {
  skip_without_linpert()
  commit <- "69b0710660aded7e071d4f67e9f3ac03b096e587"  # the one the paper's scripts cite
  source <- tempfile("archive-")
  top <- file.path(source, paste0("scFoundation-", commit))
  dir.create(file.path(top, "GEARS", "gears"), recursive = TRUE)
  writeLines("__version__ = '0.0.2'", file.path(top, "GEARS", "gears", "version.py"))
  writeLines("scFoundation", file.path(top, "README.md"))
  archive <- tempfile(fileext = ".tar.gz")
  here <- setwd(source)
  utils::tar(archive, paste0("scFoundation-", commit), compression = "gzip")
  setwd(here)
  cache <- tempfile("cache-")
  folder <- gears_fork(cache_dir = cache, url = paste0("file://", archive), progress = FALSE)
  expect_identical(basename(folder), "GEARS")
  expect_identical(list.files(folder, recursive = TRUE), "gears/version.py")
  unlink(archive)
  expect_identical(gears_fork(cache_dir = cache, url = paste0("file://", archive), progress = FALSE), folder)
})
