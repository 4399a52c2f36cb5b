#' linpert: judge gene-perturbation effect prediction against linear baselines
#'
#' The R side of linpert: thin wrappers over the Python package, with
#' Bioconductor containers at the boundary (SingleCellExperiment and
#' DelayedArray in; data frames and ggplot2 figures out). Python is reached
#' through reticulate and found at the first call: `scripts/install-r.sh`
#' installs one where the package looks, and the option `linpert.python` or
#' `LINPERT_PYTHON` chooses another (see [linpert_python()]). Errors are
#' conditions of class `linpert_error`.
#'
#' @keywords internal
#' @importClassesFrom Matrix CsparseMatrix dMatrix generalMatrix sparseMatrix
"_PACKAGE"
