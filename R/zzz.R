# The one entry point from R into Python. Every function of the package reaches Python through
# linpert_python() (the linpert module) or .linpert_bridge() (the R <-> Python converters); nothing else
# calls reticulate::import().

# Package state: the linpert module (delayed, then checked by linpert_python()), and the bridge module.
.linpert <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  python <- Sys.getenv("LINPERT_PYTHON", unset = "")
  # Only a Python that is not running yet can be chosen; a wrong one is reported by linpert_python().
  # RETICULATE_PYTHON rather than use_python(): reticulate 1.28 consults it before it looks for a Poetry
  # project, which it wrongly believes any pyproject.toml above the working directory to be.
  if (nzchar(python) && file.exists(python) && !reticulate::py_available(initialize = FALSE)) {
    Sys.setenv(RETICULATE_PYTHON = python)
  }
  # Delayed until first use. Registering 'linpert' also makes reticulate's discovery prefer a Python that has
  # it. When Python already runs, reticulate imports at once, which may fail: linpert_python() then reports.
  .linpert$module <- tryCatch(reticulate::import("linpert", delay_load = TRUE), error = function(e) NULL)
  .linpert$bridge <- NULL
  invisible()
}

#' The linpert Python module
#'
#' Returns the `linpert` Python module that every function of this package
#' calls, or stops with a message that says how to install it.
#'
#' The Python interpreter is chosen once per R session, when Python first
#' starts:
#' \enumerate{
#'   \item the environment variable `LINPERT_PYTHON`, when set, names the
#'     Python executable to use (for example `/path/to/.venv/bin/python`);
#'     set it before `library(linpert)` or in `~/.Renviron`. Loading the
#'     package then sets `RETICULATE_PYTHON` to the same path for the session;
#'   \item otherwise reticulate's own discovery applies (`RETICULATE_PYTHON`,
#'     `reticulate::use_python()`, then the Pythons it finds on the system).
#' }
#' Install the Python package into that interpreter with
#' `python -m pip install linpert`, or, from a clone of the repository,
#' with `scripts/setup.sh` (which creates `.venv`).
#'
#' @return `linpert_python()`: the `linpert` module, a reticulate
#'   Python object. `linpert_available()`: `TRUE` or `FALSE`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   lp <- linpert_python()
#'   lp$`__version__`
#' }
linpert_python <- function() {
  problem <- .linpert_problem()
  if (!is.null(problem)) stop(problem, call. = FALSE)
  .linpert$module
}

#' @rdname linpert_python
#' @export
linpert_available <- function() {
  is.null(.linpert_problem())
}

# NULL when the linpert module can be imported, else a message that names the cause and the fix.
.linpert_problem <- function() {
  if (isTRUE(.linpert$ok)) return(NULL)
  how <- paste0(
    "Install the Python package into that interpreter (`python -m pip install linpert`, or ",
    "`scripts/setup.sh` in a clone of the repository), or point LINPERT_PYTHON at a Python that has it, ",
    "e.g. Sys.setenv(LINPERT_PYTHON = \"/path/to/.venv/bin/python\") before library(linpert)."
  )
  wanted <- Sys.getenv("LINPERT_PYTHON", unset = "")
  if (nzchar(wanted) && !file.exists(wanted)) {
    return(paste0("LINPERT_PYTHON names '", wanted, "', which does not exist. ", how))
  }
  if (nzchar(wanted) && !.runs_python(wanted)) {
    return(paste0("LINPERT_PYTHON names '", wanted, "', which is not a Python interpreter that runs ",
                  "(`", wanted, " -c 'import sys'` failed). ", how))
  }
  if (!.quietly_start_python()) {
    return(paste0("No Python could be started from R (reticulate found none that works). ", how))
  }
  python <- reticulate::py_config()$python
  if (nzchar(wanted) && !.same_python(wanted, python)) {
    return(paste0(
      "LINPERT_PYTHON names '", wanted, "', but this R session already runs Python '", python,
      "' and cannot switch. Set LINPERT_PYTHON before anything starts Python (e.g. in ~/.Renviron) ",
      "and restart R."
    ))
  }
  module <- tryCatch(reticulate::import("linpert"), error = identity)
  if (inherits(module, "error")) {
    message <- conditionMessage(module)
    if (grepl("No module named 'linpert'", message, fixed = TRUE)) {
      return(paste0("The Python at '", python, "' has no module 'linpert'. ", how))
    }
    return(paste0("The Python at '", python, "' has linpert, but importing it failed: ", message, " ", how))
  }
  if (!reticulate::py_has_attr(module, "__version__")) {
    # Python took a folder named linpert (e.g. in the working directory) for a namespace package.
    where <- paste(unlist(reticulate::iterate(module$`__path__`)), collapse = "', '")
    return(paste0(
      "The Python at '", python, "' imports the folder '", where, "' as 'linpert', not the linpert Python ",
      "package. Run R from another folder. ", how
    ))
  }
  .linpert$module <- module
  .linpert$ok <- TRUE
  NULL
}

# Start Python if needed. reticulate 1.28 takes any pyproject.toml above the working directory for a Poetry
# project and warns that Poetry is missing (as in a clone of linpert, which uses hatchling): drop that warning.
.quietly_start_python <- function() {
  withCallingHandlers(
    reticulate::py_available(initialize = TRUE),
    warning = function(w) {
      if (grepl("Poetry", conditionMessage(w), fixed = TRUE)) invokeRestart("muffleWarning")
    }
  )
}

# Whether `path` runs as a Python interpreter.
.runs_python <- function(path) {
  status <- tryCatch(
    suppressWarnings(system2(path, c("-c", shQuote("import sys")), stdout = FALSE, stderr = FALSE)),
    error = function(e) 127L
  )
  identical(as.integer(status), 0L)
}

# Whether two paths name the same Python. A virtual environment's python is a symlink to its base
# interpreter, so two venvs resolve to one file: compare the folders too.
.same_python <- function(a, b) {
  same <- function(f) identical(f(a), f(b))
  same(function(p) normalizePath(p, mustWork = FALSE)) &&
    same(function(p) normalizePath(dirname(p), mustWork = FALSE))
}

# The converters between R's objects and linpert's (inst/python/linpert_rbridge.py). They move numbers
# as raw little-endian buffers, so they work whether or not reticulate can convert NumPy arrays (reticulate
# 1.28, as shipped by Debian 12, cannot convert NumPy 2 arrays).
.linpert_bridge <- function() {
  linpert_python()
  if (is.null(.linpert$bridge)) {
    path <- system.file("python", package = "linpert", mustWork = TRUE)
    module <- reticulate::import_from_path("linpert_rbridge", path = path, convert = FALSE)
    .linpert$bridge <- structure(list(module = module), class = "linpert_bridge")
  }
  .linpert$bridge
}

# bridge$f(...) calls the bridge's Python function f, then raises Python's warnings as R warnings, so that
# suppressWarnings() and withCallingHandlers() treat them like any other.
#' @export
`$.linpert_bridge` <- function(x, name) {
  module <- unclass(x)$module
  python_function <- module[[name]]
  function(...) {
    value <- python_function(...)
    for (message in unlist(.as_r(module$take_warnings()))) warning(message, call. = FALSE)
    value
  }
}
