# The one entry point from R into Python. Every function of the package reaches Python through
# linpert_python() (the linpert module) or .linpert_bridge() (the R <-> Python converters); nothing else
# calls reticulate::import().

# Package state: the linpert module (delayed, then checked by linpert_python()), and the bridge module.
.linpert <- new.env(parent = emptyenv())

.onLoad <- function(libname, pkgname) {
  # Nothing starts Python here: the interpreter is chosen and checked when a function first needs it.
  .linpert$module <- NULL
  .linpert$bridge <- NULL
  invisible()
}

#' The linpert Python module
#'
#' Returns the `linpert` Python module that every function of this package
#' calls, or stops with a `linpert_python_error` that says how to install it.
#'
#' The Python interpreter is chosen once per R session, when a function of
#' this package first needs it (loading the package starts nothing):
#' \enumerate{
#'   \item the option `linpert.python` or the environment variable
#'     `LINPERT_PYTHON`, when set, names the Python executable (for example
#'     `/path/to/.venv/bin/python`);
#'   \item otherwise the interpreter that `scripts/install-r.sh` installs,
#'     in `tools::R_user_dir("linpert", "data")`, when it exists;
#'   \item otherwise reticulate's own discovery (`RETICULATE_PYTHON`,
#'     `reticulate::use_python()`, then the Pythons it finds).
#' }
#' The interpreter is checked before Python starts. Only the core Python
#' package is needed (about 0.7 GB with its dependencies): from a clone of
#' the repository, `scripts/install-r.sh` installs it beside this package.
#'
#' @return `linpert_python()`: the `linpert` module, a reticulate
#'   Python object. `linpert_available()`: `TRUE` or `FALSE`.
#'   `linpert_python_path()`: the interpreter that will be (or is) used, or
#'   `NA` when reticulate is left to choose.
#' @export
#' @examples
#' linpert_python_path()
#' if (linpert_available()) {
#'     lp <- linpert_python()
#'     lp$`__version__`
#' }
linpert_python <- function() {
  problem <- .linpert_problem()
  if (!is.null(problem)) .abort(problem, class = "linpert_python_error")
  .linpert$module
}

#' @rdname linpert_python
#' @export
linpert_available <- function() {
  is.null(.linpert_problem())
}

#' @rdname linpert_python
#' @export
linpert_python_path <- function() {
  .chosen_python()$path
}

# The interpreter chosen for linpert and who chose it (for messages), or path NA when reticulate chooses.
.chosen_python <- function() {
  option <- getOption("linpert.python", "")
  if (is.character(option) && length(option) == 1 && nzchar(option)) {
    return(list(path = option, by = "The option linpert.python"))
  }
  variable <- Sys.getenv("LINPERT_PYTHON", unset = "")
  if (nzchar(variable)) return(list(path = variable, by = "LINPERT_PYTHON"))
  installed <- .installed_python()
  if (file.exists(installed)) return(list(path = installed, by = "The Python that scripts/install-r.sh installed"))
  list(path = NA_character_, by = NA_character_)
}

# Where scripts/install-r.sh puts the core Python environment.
.installed_python <- function() {
  file.path(tools::R_user_dir("linpert", "data"), "python", "bin", "python")
}

# NULL when the linpert module can be imported, else a message that names the cause and the fix.
.linpert_problem <- function() {
  if (isTRUE(.linpert$ok)) return(NULL)
  how <- paste0(
    "Install the Python package beside the R package (`scripts/install-r.sh` in a clone of the repository), ",
    "or point the option linpert.python (or LINPERT_PYTHON) at a Python that has it, e.g. ",
    "options(linpert.python = \"/path/to/.venv/bin/python\") before the first call."
  )
  chosen <- .chosen_python()
  wanted <- if (is.na(chosen$path)) "" else chosen$path
  if (nzchar(wanted)) {
    problem <- .python_path_problem(wanted, chosen$by)
    if (!is.null(problem)) return(paste0(problem, " ", how))
  }
  if (!reticulate::py_available(initialize = FALSE) && nzchar(wanted)) {
    reticulate::use_python(wanted, required = TRUE)
  }
  if (!.quietly_start_python()) {
    return(paste0("No Python could be started from R (reticulate found none that works). ", how))
  }
  python <- reticulate::py_config()$python
  if (nzchar(wanted) && !.same_python(wanted, python)) {
    return(paste0(
      "linpert.python names '", wanted, "', but this R session already runs Python '", python,
      "' and cannot switch. Choose it before anything starts Python (e.g. in ~/.Rprofile or ~/.Renviron) ",
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

# Why `path` (named by `by`) cannot be the Python interpreter, or NULL: it must be a file that runs.
.python_path_problem <- function(path, by) {
  if (dir.exists(path)) {
    return(paste0(by, " names '", path, "', which is a folder; name its interpreter, e.g. '",
                  file.path(path, "bin", "python"), "'."))
  }
  if (!file.exists(path)) return(paste0(by, " names '", path, "', which does not exist."))
  if (!.runs_python(path)) {
    return(paste0(by, " names '", path, "', which is not a Python interpreter that runs (`", path,
                  " -c 'import sys'` failed)."))
  }
  NULL
}

# Whether `path` runs as a Python interpreter.
.runs_python <- function(path) {
  status <- tryCatch(
    system2(path, c("-c", shQuote("import sys")), stdout = FALSE, stderr = FALSE),
    warning = function(w) 127L, error = function(e) 127L
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
    value <- tryCatch(python_function(...), error = function(e) {
      if (inherits(e, "linpert_error")) stop(e)
      .signal_python_error(e)
    })
    for (message in unlist(.as_r(module$take_warnings()))) warning(message, call. = FALSE)
    value
  }
}
