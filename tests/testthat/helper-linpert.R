# Skip a test that needs the Python package only where no Python was chosen for it. Where LINPERT_PYTHON is set
# (scripts/test.sh and CI set it), a broken Python must fail the test, not skip it.
skip_without_linpert <- function() {
  if (nzchar(Sys.getenv("LINPERT_PYTHON"))) {
    problem <- linpert:::.linpert_problem()
    if (!is.null(problem)) testthat::fail(problem)
    return(invisible(TRUE))
  }
  testthat::skip_if_not(linpert_available(), "the linpert Python package is not available (set LINPERT_PYTHON)")
}

# A small experiment, genes x cells: 6 genes, 4 condition labels that make 3 conditions (ctrl, KLF1+ctrl from
# 'ctrl+KLF1', CEBPA+KLF1 from both orders), sparse log-normalised values, Ensembl-like rownames and symbols in
# rowData(x)$gene_name.
toy_experiment <- function(sparse = TRUE) {
  set.seed(42)
  labels <- rep(c("ctrl", "ctrl+KLF1", "KLF1+CEBPA", "CEBPA+KLF1", "ctrl"), times = c(9, 6, 4, 3, 2))
  values <- Matrix::rsparsematrix(6, length(labels), density = 0.4, rand.x = function(n) round(runif(n, 0.1, 4), 3))
  if (!sparse) values <- as.matrix(values)
  symbols <- c("KLF1", "CEBPA", "GATA1", "SPI1", "TAL1", "HBG1")
  ids <- sprintf("ENSG%011d", seq_along(symbols))
  dimnames(values) <- list(ids, paste0("cell", seq_along(labels)))
  SingleCellExperiment::SingleCellExperiment(
    assays = list(logcounts = values, counts = round(expm1(as.matrix(values)))),
    colData = S4Vectors::DataFrame(condition = labels, batch = "b1"),
    rowData = S4Vectors::DataFrame(gene_name = symbols)
  )
}

# Run R code in a fresh R process with the given LINPERT_PYTHON and this session's library path; its output lines.
run_r <- function(code, linpert_python) {
  rscript <- file.path(R.home("bin"), "Rscript")
  args <- c(
    "-u", "RETICULATE_PYTHON", "-u", "PYTHONPATH", "-u", "PYTHONHOME",
    paste0("LINPERT_PYTHON=", linpert_python),
    paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep)),
    rscript, "--vanilla", "-e", shQuote(code)
  )
  suppressWarnings(system2("env", args, stdout = TRUE, stderr = TRUE))
}
