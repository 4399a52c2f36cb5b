# The reference: the mean of each condition's cells computed here in R with Matrix::rowMeans.
reference_means <- function(values, groups, conditions) {
  sapply(conditions, function(cond) Matrix::rowMeans(values[, groups == cond, drop = FALSE]))
}

test_that("pseudobulk() averages each canonical condition's cells, as rowMeans does", {
  skip_without_linpert()
  sce <- toy_experiment()
  pb <- pseudobulk(sce)

  expect_s4_class(pb, "SummarizedExperiment")
  # ctrl first, then sorted; 'ctrl+KLF1' -> 'KLF1+ctrl'; 'KLF1+CEBPA' and 'CEBPA+KLF1' merge under the sorted order
  expect_identical(colnames(pb), c("ctrl", "CEBPA+KLF1", "KLF1+ctrl"))
  groups <- c(
    "ctrl" = "ctrl", "ctrl+KLF1" = "KLF1+ctrl", "KLF1+CEBPA" = "CEBPA+KLF1", "CEBPA+KLF1" = "CEBPA+KLF1"
  )[sce$condition]
  expected <- reference_means(SummarizedExperiment::assay(sce, "logcounts"), groups, colnames(pb))
  dimnames(expected) <- list(SummarizedExperiment::rowData(sce)$gene_name, colnames(pb))
  expect_identical(SummarizedExperiment::assayNames(pb), "logcounts")
  expect_equal(SummarizedExperiment::assay(pb, "logcounts"), expected, tolerance = 1e-12)
})

test_that("pseudobulk() describes the conditions in colData and keeps gene ids in rowData", {
  skip_without_linpert()
  sce <- toy_experiment()
  pb <- pseudobulk(sce)

  cd <- SummarizedExperiment::colData(pb)
  expect_identical(colnames(cd), c("genes", "kind", "n_cells"))
  expect_identical(cd$genes, c("", "CEBPA+KLF1", "KLF1"))
  expect_identical(cd$kind, c("control", "double", "single"))
  expect_identical(cd$n_cells, c(11L, 7L, 6L))
  expect_identical(rownames(pb), SummarizedExperiment::rowData(sce)$gene_name)
  expect_identical(SummarizedExperiment::rowData(pb)$gene_id, rownames(sce))

  provenance <- S4Vectors::metadata(pb)$linpert
  expect_identical(provenance$condition_key, "condition")
  expect_identical(provenance$assay, "logcounts")
  expect_identical(provenance$gene_key, "gene_name")
  expect_identical(provenance$n_cells, 24L)
})

test_that("sparse and dense assays, SingleCellExperiment or not, give the same pseudobulk", {
  skip_without_linpert()
  sparse <- toy_experiment(sparse = TRUE)
  expect_s4_class(SummarizedExperiment::assay(sparse, "logcounts"), "dgCMatrix")
  dense <- toy_experiment(sparse = FALSE)
  plain <- SummarizedExperiment::SummarizedExperiment(
    assays = list(logcounts = SummarizedExperiment::assay(sparse, "logcounts")),
    colData = SummarizedExperiment::colData(sparse)
  )
  rownames(plain) <- SummarizedExperiment::rowData(sparse)$gene_name

  from_sparse <- pseudobulk(sparse)
  expect_equal(
    SummarizedExperiment::assay(pseudobulk(dense)), SummarizedExperiment::assay(from_sparse),
    tolerance = 1e-12
  )
  from_plain <- pseudobulk(plain)
  expect_equal(SummarizedExperiment::assay(from_plain), SummarizedExperiment::assay(from_sparse), tolerance = 1e-12)
  # symbols came from the rownames, so there are no separate gene ids
  expect_null(SummarizedExperiment::rowData(from_plain)$gene_id)
  expect_null(S4Vectors::metadata(from_plain)$linpert$gene_key)
})

test_that("a larger sparse assay is averaged correctly, in several chunks", {
  skip_without_linpert()
  set.seed(7)
  n_genes <- 800
  n_cells <- 3000
  values <- Matrix::rsparsematrix(n_genes, n_cells, density = 0.05, rand.x = function(n) runif(n, 0, 5))
  rownames(values) <- paste0("G", seq_len(n_genes))
  labels <- sample(c("ctrl", paste0("G", 1:40, "+ctrl"), "G1+G2", "G2+G3"), n_cells, replace = TRUE)
  se <- SummarizedExperiment::SummarizedExperiment(
    assays = list(normed = values), colData = S4Vectors::DataFrame(perturbation = labels)
  )
  pb <- pseudobulk(se, condition = "perturbation", assay = "normed", chunk_size = 700)

  expect_identical(colnames(pb)[1], "ctrl")
  expect_identical(colnames(pb)[-1], sort(setdiff(unique(labels), "ctrl"), method = "radix"))
  expected <- reference_means(values, labels, colnames(pb))
  expect_equal(unname(SummarizedExperiment::assay(pb)), unname(expected), tolerance = 1e-12)
  expect_identical(SummarizedExperiment::colData(pb)$n_cells, as.integer(table(labels)[colnames(pb)]))
  expect_identical(S4Vectors::metadata(pb)$linpert$condition_key, "perturbation")
  expect_identical(S4Vectors::metadata(pb)$linpert$assay, "normed")
})

test_that("bad arguments are named, with the fix", {
  sce <- toy_experiment()
  expect_error(pseudobulk(sce, condition = "perturbation"),
               "colData\\(x\\) has no column 'perturbation'. Its columns are: 'condition', 'batch'")
  expect_error(pseudobulk(sce, assay = "normcounts"),
               "x has no assay 'normcounts'. Its assays are: 'logcounts', 'counts'")
  expect_error(pseudobulk(as.matrix(SummarizedExperiment::assay(sce))),
               "`x` must be a SingleCellExperiment or SummarizedExperiment")
  expect_error(pseudobulk(sce, condition = c("a", "b")), "`condition` must be one non-empty string")
  expect_error(pseudobulk(sce, "condition", "logcounts", "gene_name", 5), "must be named")

  sce$condition[c(2, 5)] <- NA
  expect_error(pseudobulk(sce), "2 cells have no condition")
})

test_that("errors raised in Python reach R with their message", {
  skip_without_linpert()
  sce <- toy_experiment()
  sce$condition[sce$condition == "ctrl"] <- "non-targeting"
  expect_error(pseudobulk(sce), "No control cells")
})

test_that("Python's argument names are answered with the R spelling", {
  sce <- toy_experiment()
  expect_error(pseudobulk(sce, condition_key = "condition"), "`condition_key` is the Python spelling: in R, write `condition = ...`", fixed = TRUE)
  expect_error(pseudobulk(sce, layer = "counts"), "write `assay = ...`", fixed = TRUE)
})

test_that("a DelayedArray assay, sparse or dense, gives the pseudobulk of the same values in memory", {
  skip_without_linpert()
  skip_if_not_installed("DelayedArray")
  sce <- toy_experiment()
  expected <- SummarizedExperiment::assay(pseudobulk(sce))
  delayed <- sce
  values <- SummarizedExperiment::assay(sce, "logcounts")
  for (seed in list(values, as.matrix(values))) {
    SummarizedExperiment::assay(delayed, "logcounts", withDimnames = FALSE) <- DelayedArray::DelayedArray(seed)
    expect_identical(SummarizedExperiment::assay(pseudobulk(delayed)), expected)
  }
})
