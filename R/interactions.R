#' Call genetic interactions of double perturbations
#'
#' The paper's interaction calling (spec §4): for every double `A+B` and
#' read-out gene, the deviation from additivity
#' `dev = AB - (A + B - ctrl)`; Efron's local false discovery rate of all
#' deviations with an empirical null (`nulltype = 1`); the thresholds are the
#' deviations whose local fdr is closest to `level` on each side, and the
#' interactions are classified as buffering, synergy, opposite or other.
#'
#' The deviations are computed in Python; the empirical null is fitted **in
#' R**: with `backend = "auto"`, R's own `locfdr::locfdr()` when the
#' `locfdr` package is installed, otherwise linpert's Python port of it
#' (the same numbers; see `linpert.interactions.locfdr`). A message says
#' which backend was used, and the result records it.
#'
#' @param se A pseudobulk `SummarizedExperiment` with `ctrl`, singles
#'   (`A+ctrl`) and doubles (`A+B`).
#' @param n_genes The number of read-out genes: the highest control means.
#' @param level The local fdr level of the thresholds (the paper: 0.05).
#' @param rule `"paper"` (closest to `level` on each side) or `"tail"`
#'   (every deviation beyond has fdr below `level`).
#' @param backend `"auto"`, `"r"` (R's `locfdr`, which must be installed) or
#'   `"python"` (the port).
#' @param ... Further arguments of `locfdr::locfdr()` (e.g. `df`, `bre`,
#'   `pct0`), by name.
#'
#' @return A data frame, one row per (double, gene): `perturbation`,
#'   `gene`, `ctrl`, `single_a`, `single_b`, `observed`, `additive`,
#'   `deviation`, `fdr`, `interaction` (logical), `class`, and `backend`.
#'   Attributes: `thresholds` (`c(lower, upper)`), `counts` (pairs per
#'   class), `backend`, `null` (the null's `delta`, `sigma`, `p0`) and
#'   `level`.
#' @export
#' @examples
#' if (linpert_available()) {
#'   sce <- simulate_screen(n_genes = 200, n_singles = 20, n_doubles = 30,
#'                          cells_per_condition = 20, n_control_cells = 200, seed = 1)
#'   calls <- call_interactions(pseudobulk(sce), n_genes = 200)
#'   attr(calls, "thresholds")
#'   attr(calls, "counts")
#' }
call_interactions <- function(se, n_genes = 1000, level = 0.05, rule = c("paper", "tail"),
                              backend = c("auto", "r", "python"), ...) {
  .check_pseudobulk(se)
  n_genes <- .check_count(n_genes, "n_genes")
  level <- .check_number(level, "level", 0, 1)
  rule <- match.arg(rule)
  requested <- match.arg(backend)
  backend <- .locfdr_backend(requested)
  options <- .named_options(list(...), "locfdr::locfdr()")
  if (!is.null(options$nulltype) && options$nulltype != 1) {
    .abort("call_interactions() uses the paper's empirical null (nulltype = 1); use locfdr::locfdr() directly ",
         "for other nulls.")
  }
  options$nulltype <- NULL
  bridge <- .linpert_bridge()
  deviations <- .as_r(bridge$additive_deviation(.pseudobulk_to_python(se), n_genes))
  table <- .frame_from_python(deviations$table)
  z <- table$deviation
  if (any(!is.finite(z))) {
    .abort("Some deviations are NA or infinite; check the pseudobulk for NA expression.")
  }
  null <- .fit_null(z, backend, options)
  port <- if (requested == "python") "linpert's Python port of locfdr (backend = \"python\")" else
    "linpert's Python port of locfdr (R's locfdr is not installed)"
  message("Empirical null of ", length(z), " deviations fitted with ",
          if (backend == "r") "R's locfdr package" else port, ".")
  res <- .as_r(bridge$interaction_calls(
    .frame_to_python(table), .raw_double(null$fdr), null$center, level, rule
  ))
  calls <- .frame_from_python(res$table)
  calls$backend <- backend
  counts <- unlist(res$counts)
  structure(
    calls,
    thresholds = c(lower = res$lower, upper = res$upper),
    counts = counts,
    backend = backend,
    null = null$estimates,
    level = level,
    missing_singles = deviations$missing_singles
  )
}

.locfdr_backend <- function(backend) {
  installed <- requireNamespace("locfdr", quietly = TRUE)
  if (backend == "auto") return(if (installed) "r" else "python")
  if (backend == "r" && !installed) {
    .abort("backend = \"r\" needs the R package 'locfdr': install.packages(\"locfdr\"), or use backend = \"python\".",
           class = "linpert_dependency_error")
  }
  backend
}

# The empirical null (nulltype 1): the local fdr of every z and the null's centre, from R or from the Python port.
.fit_null <- function(z, backend, options) {
  if (backend == "r") {
    fit <- do.call(locfdr::locfdr, c(list(zz = z, nulltype = 1, plot = 0), options))
    fp0 <- fit$fp0
    return(list(
      fdr = as.numeric(fit$fdr), center = unname(fp0["mlest", "delta"]),
      estimates = c(delta = unname(fp0["mlest", "delta"]), sigma = unname(fp0["mlest", "sigma"]),
                    p0 = unname(fp0["mlest", "p0"]))
    ))
  }
  res <- .as_r(.linpert_bridge()$locfdr_python(.raw_double(z), c(list(nulltype = 1L), options)))
  fp0 <- .frame_from_python(res$fp0)
  list(
    fdr = .read_doubles(res$fdr, length(z)), center = res$center,
    estimates = c(delta = fp0["mlest", "delta"], sigma = fp0["mlest", "sigma"], p0 = fp0["mlest", "p0"])
  )
}
