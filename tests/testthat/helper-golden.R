# The golden values both test suites assert (inst/extdata/golden/, written by make_golden.py).
golden_dir <- function() {
  installed <- system.file("extdata", "golden", package = "linpert")
  if (nzchar(installed)) installed else testthat::test_path("..", "..", "inst", "extdata", "golden")
}

golden_values <- function() jsonlite::fromJSON(file.path(golden_dir(), "golden.json"), simplifyVector = TRUE)

# The golden CSV (conditions x genes) as a pseudobulk SummarizedExperiment (genes x conditions).
golden_pseudobulk <- function() {
  frame <- utils::read.csv(file.path(golden_dir(), "pseudobulk.csv"), row.names = 1, check.names = FALSE)
  values <- t(as.matrix(frame))
  SummarizedExperiment::SummarizedExperiment(assays = list(logcounts = values))
}

# A small simulated Norman-like screen and its pseudobulk, made once per test file.
small_screen <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      sce <- simulate_screen("norman", n_genes = 150, n_singles = 12, n_doubles = 24, cells_per_condition = 15,
                             n_control_cells = 100, seed = 5)
      cache <<- list(sce = sce, pb = pseudobulk(sce))
    }
    cache
  }
})
