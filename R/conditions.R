# linpert's errors as classed R conditions. Every error the package raises, its own or one from Python, inherits
# from `linpert_error`, so that callers can catch them with tryCatch(..., linpert_error = ).
#
#   linpert_input_error     a bad argument or input (Python's ValueError, TypeError, KeyError)
#   linpert_file_error      a file or folder that is missing, unreadable or not linpert's (OSError and kin)
#   linpert_download_error  a download that failed (DownloadError)
#   linpert_locfdr_error    the empirical null could not be fitted (LocfdrError)
#   linpert_model_error     a model's environment or worker failed, or the user's own model raised
#   linpert_dependency_error  an R package that this function needs is not installed
#   linpert_python_error    Python itself is missing or broken, or anything else Python raised

# Signal a linpert error of `class` (one of the above, without the common parent); the message is the pieces in
# `...` pasted together as stop() pastes them; `data` adds fields to the condition.
.abort <- function(..., class = "linpert_input_error", data = list()) {
  message <- paste(unlist(lapply(list(...), as.character)), collapse = "")
  condition <- do.call(errorCondition, c(list(message, class = c(class, "linpert_error"), call = NULL), data))
  stop(condition)
}

# Python's exception type -> the R condition class.
.PYTHON_CLASSES <- c(
  ValueError = "linpert_input_error", TypeError = "linpert_input_error", KeyError = "linpert_input_error",
  IndexError = "linpert_input_error",
  FileNotFoundError = "linpert_file_error", FileExistsError = "linpert_file_error",
  IsADirectoryError = "linpert_file_error", NotADirectoryError = "linpert_file_error",
  PermissionError = "linpert_file_error", OSError = "linpert_file_error",
  DownloadError = "linpert_download_error", LocfdrError = "linpert_locfdr_error",
  StackInstallError = "linpert_model_error", WorkerError = "linpert_model_error"
)

# Python's spellings in a message -> R's. Argument names as the R functions call them; Python's literals; the
# AnnData slots an R user meets as colData()/rowData() columns; model classes as model_spec() names them.
.R_WORDS <- c(
  "obs\\['([^']+)'\\]" = "colData(x)$\\1",
  "var\\['([^']+)'\\]" = "rowData(x)$\\1",
  "\\bcondition_key\\s*=" = "condition =",
  "\\bperturbation_key\\s*=" = "condition =",
  "\\bgene_key\\s*=" = "gene_name =",
  "\\blayer\\s*=" = "assay =",
  "\\s*=\\s*None\\b" = " = NULL",
  "\\bNone\\b" = "NULL",
  "\\s*=\\s*True\\b" = " = TRUE",
  "\\s*=\\s*False\\b" = " = FALSE",
  "\\blinpert\\.datasets\\.fetch\\(" = "fetch_resource(",
  "\\bNoChange(\\.__init__)?\\(\\)" = "model_spec(\"no_change\")",
  "\\bAdditive(\\.__init__)?\\(\\)" = "model_spec(\"additive\")",
  "\\bMean(\\.__init__)?\\(\\)" = "model_spec(\"mean\")",
  "\\bLinearModel(\\.__init__)?\\(\\)" = "model_spec(\"linear\")",
  "\\bTransferModel(\\.__init__)?\\(\\)" = "model_spec(\"transfer\")",
  "\\bGearsModel(\\.__init__)?\\(\\)" = "model_spec(\"gears\")",
  "\\bCpaModel(\\.__init__)?\\(\\)" = "model_spec(\"cpa\")",
  "\\bScGptModel(\\.__init__)?\\(\\)" = "model_spec(\"scgpt\")",
  "\\bScFoundationModel(\\.__init__)?\\(\\)" = "model_spec(\"scfoundation\")",
  "\\bStateModel(\\.__init__)?\\(\\)" = "model_spec(\"state\")",
  "\\bCellFlowModel(\\.__init__)?\\(\\)" = "model_spec(\"cellflow\")",
  "\\bFunctionModel(\\.__init__)?\\(\\)" = "custom_model()",
  "\\bgot an unexpected keyword argument\\b" = "got an unexpected argument",
  "\\bkeyword argument" = "argument",
  "pip install linpert\\b" = "scripts/install-r.sh (see ?linpert_python)"
)

# A message in R's words (see .R_WORDS).
.in_r_words <- function(message) {
  for (pattern in names(.R_WORDS)) message <- gsub(pattern, .R_WORDS[[pattern]], message, perl = TRUE)
  message
}

# Re-signal an error that reticulate raised for a Python exception as a classed linpert condition in R's words.
# reticulate 1.28 gives "Type: message" as the message; the type also comes from py_last_error(), with any notes
# Python added (which model, which step) after the message.
.signal_python_error <- function(err) {
  text <- conditionMessage(err)
  type <- sub("^([A-Za-z_][A-Za-z0-9_.]*):.*$", "\\1", strsplit(text, "\n", fixed = TRUE)[[1]][1])
  if (identical(type, strsplit(text, "\n", fixed = TRUE)[[1]][1])) type <- "Exception"
  body <- sub("^[A-Za-z_][A-Za-z0-9_.]*: ?", "", text)
  body <- sub("\\s+$", "", body)
  short_type <- sub("^.*\\.", "", type)
  class <- if (short_type %in% names(.PYTHON_CLASSES)) .PYTHON_CLASSES[[short_type]] else "linpert_python_error"
  # a note of linpert's: the user's own model or metric raised (benchmark/_cell.py, metrics/_registry.py)
  if (grepl("\\((while [a-z]+ing|in metric) ", body)) class <- "linpert_model_error"
  .abort(.in_r_words(body), class = class, data = list(python_type = short_type))
}
