#' The paper's published tables, and a run beside them
#'
#' The source data of Ahlmann-Eltze, Huber and Anders (2025), shipped with
#' linpert (CC BY 4.0). `published_table()`: any of them by name (see
#' `published_tables()`). `published_summary()`: the published mean L2 per
#' model of a dataset, or of your own rows beside it. `published_fidelity()`:
#' each model of your run beside the paper's, perturbation by perturbation.
#'
#' @param name A table's name, one of `published_tables()$name`.
#' @param dataset One of the paper's datasets: `"norman"`, `"adamson"`,
#'   `"replogle_k562"`, `"replogle_rpe1"`.
#' @param rows Your own results rows to summarise beside the paper's, or
#'   `NULL`.
#' @param results The `results` table of [run_benchmark()] on one of the
#'   paper's datasets.
#' @return Data frames. `published_tables()`: `name` and `description`.
#' @export
#' @examples
#' if (linpert_available()) {
#'     published_tables()
#'     head(published_table("resources"))
#'     published_summary("norman")
#' }
published_tables <- function() {
  tables <- .py_call("published.TABLES")
  data.frame(name = names(tables), description = as.character(unlist(tables)), stringsAsFactors = FALSE)
}

#' @rdname published_tables
#' @export
published_table <- function(name) {
  .check_string(name, "name")
  .py_call("published.table", name)
}

#' @rdname published_tables
#' @export
published_summary <- function(dataset, rows = NULL) {
  .check_string(dataset, "dataset")
  .py_call("published.summary", dataset, rows = rows)
}

#' @rdname published_tables
#' @export
published_fidelity <- function(results, dataset) {
  .check_columns(results, c("model", "perturbation"), "results", "run_benchmark()$results")
  .check_string(dataset, "dataset")
  .py_call("published.fidelity", results, dataset)
}
