#' linpert: judge gene-perturbation effect prediction against linear baselines
#'
#' The R side of linpert: thin wrappers over the Python package, with
#' Bioconductor containers at the boundary. Python is reached through
#' reticulate; set the environment variable `LINPERT_PYTHON` to the Python
#' that has the `linpert` package (see [linpert_python()]).
#'
#' @keywords internal
#' @importClassesFrom Matrix CsparseMatrix dMatrix generalMatrix sparseMatrix
"_PACKAGE"
