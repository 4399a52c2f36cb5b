test_that("LINPERT_PYTHON chooses the Python, and the module matches the R package's version", {
  wanted <- Sys.getenv("LINPERT_PYTHON")
  skip_if(!nzchar(wanted), "LINPERT_PYTHON is not set")
  skip_without_linpert()
  module <- linpert_python()
  expect_s3_class(module, "python.builtin.module")
  expect_true(linpert_available())
  running <- reticulate::py_config()$python
  expect_true(linpert:::.same_python(running, wanted))
  # the interpreter's own view: its prefix is the folder above LINPERT_PYTHON's bin/
  prefix <- reticulate::import("sys")$prefix
  expect_identical(normalizePath(prefix), normalizePath(dirname(dirname(wanted))))
  expect_identical(module$`__version__`, as.character(utils::packageVersion("linpert")))
})

test_that("a Python without the linpert module gives a message that says how to install it", {
  skip_on_os("windows")
  base <- Sys.getenv("LINPERT_PYTHON")
  skip_if(!nzchar(base), "LINPERT_PYTHON is not set")
  # A fresh virtual environment of the same interpreter: it starts, but has no linpert.
  venv <- file.path(tempfile("no-linpert-"), "venv")
  status <- system2(base, c("-m", "venv", "--without-pip", shQuote(venv)), stdout = FALSE, stderr = FALSE)
  skip_if(status != 0, "could not create a virtual environment")
  python <- file.path(venv, "bin", "python")

  out <- run_r(
    "library(linpert); cat('available:', linpert_available(), '\\n');
     tryCatch(linpert_python(), error = function(e) cat('error:', conditionMessage(e), '\\n'))",
    linpert_python = python
  )
  out <- paste(out, collapse = "\n")
  expect_match(out, "available: FALSE", fixed = TRUE)
  expect_match(out, paste0("The Python at '", python, "' has no module 'linpert'"), fixed = TRUE)
  expect_match(out, "scripts/install-r.sh", fixed = TRUE)
  expect_match(out, "LINPERT_PYTHON", fixed = TRUE)

  # A folder named linpert in the working directory is a namespace package to Python, not linpert.
  decoy <- file.path(tempfile("decoy-"), "linpert")
  dir.create(decoy, recursive = TRUE)
  out <- run_r(
    sprintf("setwd('%s'); library(linpert); cat('available:', linpert_available(), '\\n');
             tryCatch(linpert_python(), error = function(e) cat('error:', conditionMessage(e), '\\n'))",
            dirname(decoy)),
    linpert_python = python
  )
  out <- paste(out, collapse = "\n")
  expect_match(out, "available: FALSE", fixed = TRUE)
  expect_match(out, "imports the folder '", fixed = TRUE)
  expect_match(out, "as 'linpert', not the linpert Python package", fixed = TRUE)

  # A linpert that fails to import says why, instead of claiming there is none.
  site <- Sys.glob(file.path(venv, "lib", "python*", "site-packages"))
  dir.create(file.path(site, "linpert"))
  writeLines("import a_dependency_that_is_missing", file.path(site, "linpert", "__init__.py"))
  out <- paste(run_r("library(linpert); tryCatch(linpert_python(), error = function(e) cat(conditionMessage(e)))",
                     linpert_python = python), collapse = "\n")
  expect_match(out, "has linpert, but importing it failed", fixed = TRUE)
  expect_match(out, "No module named 'a_dependency_that_is_missing'", fixed = TRUE)
})

test_that("LINPERT_PYTHON naming a missing file is reported as such", {
  skip_on_os("windows")
  missing <- file.path(tempdir(), "no-such-python")
  out <- run_r(
    "library(linpert); cat('available:', linpert_available(), '\\n');
     tryCatch(linpert::pseudobulk(SummarizedExperiment::SummarizedExperiment(
       assays = list(logcounts = matrix(1, 1, 1, dimnames = list('A', 'c1'))),
       colData = S4Vectors::DataFrame(condition = 'ctrl'))),
     error = function(e) cat('error:', conditionMessage(e), '\\n'))",
    linpert_python = missing
  )
  out <- paste(out, collapse = "\n")
  expect_match(out, "available: FALSE", fixed = TRUE)
  expect_match(out, paste0("error: LINPERT_PYTHON names '", missing, "', which does not exist."), fixed = TRUE)
})

test_that("a Python started before LINPERT_PYTHON could choose it is reported, not silently used", {
  skip_on_os("windows")
  base <- Sys.getenv("LINPERT_PYTHON")
  skip_if(!nzchar(base), "LINPERT_PYTHON is not set")
  venv <- file.path(tempfile("other-"), "venv")
  status <- system2(base, c("-m", "venv", "--without-pip", shQuote(venv)), stdout = FALSE, stderr = FALSE)
  skip_if(status != 0, "could not create a virtual environment")
  other <- file.path(venv, "bin", "python")
  # Python starts (on `other`) before linpert is loaded; LINPERT_PYTHON then names `base`.
  code <- sprintf(
    "reticulate::use_python('%s', required = TRUE); invisible(reticulate::py_config());
     Sys.setenv(LINPERT_PYTHON = '%s'); library(linpert);
     tryCatch(linpert_python(), error = function(e) cat('error:', conditionMessage(e), '\\n'))",
    other, base
  )
  out <- paste(run_r(code, linpert_python = ""), collapse = "\n")
  expect_match(out, "already runs Python", fixed = TRUE)
  expect_match(out, "cannot switch", fixed = TRUE)
})

test_that("LINPERT_PYTHON naming a file that is not a Python says so and names the variable", {
  skip_on_os("windows")
  not_python <- tempfile("not-python-")
  writeLines("this is a text file", not_python)
  Sys.chmod(not_python, "0755")
  out <- run_r("library(linpert); tryCatch(linpert_python(), error = function(e) cat('error:', conditionMessage(e)))",
               linpert_python = not_python)
  out <- paste(out, collapse = "\n")
  expect_match(out, paste0("error: LINPERT_PYTHON names '", not_python, "', which is not a Python interpreter"),
               fixed = TRUE)
})

test_that("Python's warnings arrive as R warnings that suppressWarnings() silences", {
  skip_without_linpert()
  sce <- toy_experiment()
  SummarizedExperiment::assay(sce, "logcounts") <- SummarizedExperiment::assay(sce, "counts")
  expect_warning(pseudobulk(sce), "looks like raw counts")
  expect_no_warning(suppressWarnings(pseudobulk(sce)))
  # the relay forgets what it passed on
  expect_length(unlist(linpert:::.as_r(unclass(linpert:::.linpert_bridge())$module$take_warnings())), 0)
})

test_that("loading the package starts no Python, and a folder named as the Python is refused before it starts", {
  skip_on_os("windows")
  folder <- tempfile("python-folder-")
  dir.create(folder)
  out <- run_r(
    "library(linpert); cat('started:', reticulate::py_available(initialize = FALSE), '\\n');
     e <- tryCatch(linpert_python(), error = identity);
     cat('class:', paste(class(e), collapse = ' '), '\\n'); cat('error:', conditionMessage(e), '\\n');
     cat('started after:', reticulate::py_available(initialize = FALSE), '\\n')",
    linpert_python = folder
  )
  out <- paste(out, collapse = "\n")
  expect_match(out, "started: FALSE", fixed = TRUE)
  expect_match(out, "class: linpert_python_error linpert_error error condition", fixed = TRUE)
  expect_match(out, paste0("LINPERT_PYTHON names '", folder, "', which is a folder; name its interpreter, e.g. '",
                           file.path(folder, "bin", "python"), "'"), fixed = TRUE)
  expect_match(out, "started after: FALSE", fixed = TRUE)
})

test_that("the option linpert.python chooses the Python before LINPERT_PYTHON", {
  skip_on_os("windows")
  missing <- tempfile("no-python-")
  out <- run_r(
    paste0("options(linpert.python = '", missing, "'); library(linpert);
            cat('path:', linpert_python_path(), '\\n');
            tryCatch(linpert_python(), error = function(e) cat('error:', conditionMessage(e), '\\n'))"),
    linpert_python = Sys.getenv("LINPERT_PYTHON", "python3")
  )
  out <- paste(out, collapse = "\n")
  expect_match(out, paste0("path: ", missing), fixed = TRUE)
  expect_match(out, paste0("The option linpert.python names '", missing, "', which does not exist."), fixed = TRUE)
})

test_that("Python's errors arrive as classed R conditions in R's words", {
  skip_without_linpert()
  bulk <- pseudobulk(toy_experiment())
  # Python's ValueError, raised by the linear model's own check: no "ValueError:" prefix, R's names
  err <- tryCatch(fit_model(bulk, "linear", n_components = 0), error = identity)
  expect_s3_class(err, "linpert_input_error")
  expect_s3_class(err, "linpert_error")
  expect_identical(err$python_type, "ValueError")
  expect_false(grepl("ValueError", conditionMessage(err), fixed = TRUE))
  expect_false(grepl("__init__", conditionMessage(err), fixed = TRUE))
  # R's own checks are classed too
  expect_error(pseudobulk(toy_experiment(), condition = "nope"), class = "linpert_input_error")
  expect_error(call_interactions(bulk, backend = "r", n_genes = 0), class = "linpert_error")
})

test_that("an error in a custom R model names the model and the step", {
  skip_without_linpert()
  sce <- simulate_screen(n_genes = 60, n_singles = 8, n_doubles = 10, cells_per_condition = 10,
                         n_control_cells = 40, seed = 1)
  broken <- custom_model(fit = function(train) stop("my fit broke"), predict = function(state, conditions) NULL)
  err <- tryCatch(run_benchmark(pseudobulk(sce), seeds = 1, models = list(mine = broken)), error = identity)
  expect_s3_class(err, "linpert_model_error")
  expect_match(conditionMessage(err), "my fit broke", fixed = TRUE)
  expect_match(conditionMessage(err), "fitting model 'mine' on split seed 1", fixed = TRUE)
})

test_that("Python reads R's vectors in place, and the buffer path gives the same numbers", {
  skip_without_linpert()
  expect_true(linpert:::.memory_shared())  # reticulate 1.28 on Debian: the shared path is the one used
  sce <- simulate_screen(n_genes = 80, n_singles = 8, n_doubles = 10, cells_per_condition = 12,
                         n_control_cells = 40, seed = 2)
  dense <- sce
  SummarizedExperiment::assay(dense, "logcounts") <- as.matrix(SummarizedExperiment::assay(sce, "logcounts"))
  shared <- list(pseudobulk(sce), pseudobulk(dense))
  x_before <- SummarizedExperiment::assay(sce, "logcounts")@x[1:5]
  state <- linpert:::.linpert
  on.exit(state$shared <- NULL)
  state$shared <- FALSE  # as where R's memory cannot be shared
  buffered <- list(pseudobulk(sce), pseudobulk(dense))
  copied <- simulate_screen(n_genes = 80, n_singles = 8, n_doubles = 10, cells_per_condition = 12,
                            n_control_cells = 40, seed = 2)
  for (i in 1:2) {
    expect_identical(SummarizedExperiment::assay(shared[[i]]), SummarizedExperiment::assay(buffered[[i]]))
  }
  expect_identical(SummarizedExperiment::assay(copied, "logcounts"), SummarizedExperiment::assay(sce, "logcounts"))
  expect_identical(SummarizedExperiment::assay(sce, "logcounts")@x[1:5], x_before)  # never written to
})

test_that("strings cross whole as character vectors, in order, one string still as a list", {
  skip_without_linpert()
  labels <- c(sprintf("G%d+ctrl", 5000:1), "ctrl+A")  # reticulate would convert an R list of these one by one
  expected <- c(sprintf("G%d+ctrl", 5000:1), "A+ctrl")
  expect_identical(canonical_conditions(labels), expected)
  expect_identical(canonical_conditions("ctrl+A"), "A+ctrl")
  expect_identical(linpert:::.to_python_value(as.list(labels))$`__linpert__`, "strings")
  expect_identical(linpert:::.to_python_value(list("A")), list("A"))  # one string in a list stays a list
  embedding <- random_embedding(sprintf("G%d", 3:1), n_components = 2)
  expect_identical(rownames(embedding), sprintf("G%d", 3:1))
})
