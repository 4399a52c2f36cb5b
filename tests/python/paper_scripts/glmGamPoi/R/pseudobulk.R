# One column per group of cells, groups in the order they first appear (vctrs::vec_group_loc, as glmGamPoi 1.16,
# the paper's version, groups them); every assay averaged (rowMeans2), glmGamPoi's default for an assay other than
# counts.
pseudobulk <- function(data, group_by, ...) {
  col_data <- as.data.frame(SummarizedExperiment::colData(data))
  keys <- as.data.frame(lapply(group_by, rlang::eval_tidy, data = col_data))
  names(keys) <- vapply(group_by, rlang::as_label, character(1))
  groups <- vctrs::vec_group_loc(keys)
  assays <- lapply(SummarizedExperiment::assays(data), function(values) {
    means <- vapply(groups$loc, function(i) MatrixGenerics::rowMeans2(as.matrix(values[, i, drop = FALSE])),
                    numeric(nrow(values)))
    matrix(means, nrow = nrow(values), dimnames = list(rownames(data), NULL))
  })
  SingleCellExperiment::SingleCellExperiment(assays = assays, colData = S4Vectors::DataFrame(groups$key))
}
