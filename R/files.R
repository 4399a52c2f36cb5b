#' Read a screen or an embedding from a file
#'
#' `read_anndata()`: an `.h5ad` file of cells as a `SingleCellExperiment`
#' (genes × cells), conditions made canonical (Python
#' `linpert.datasets.read_anndata()`). `read_scfoundation_norman()`:
#' scFoundation's Norman file (its gene names mapped to symbols).
#' `describe_file()`: what linpert sees in a file (its size, layout and
#' conditions), without reading the matrix.
#'
#' @param path The file.
#' @param condition The `obs` column with each cell's condition.
#' @param drop_unmapped Drop scFoundation's genes without a symbol.
#' @return A `SingleCellExperiment`; `describe_file()`: a string.
#' @export
#' @examples
#' if (linpert_available()) {
#'     path <- tempfile(fileext = ".h5ad")
#'     sce <- simulate_screen(n_genes = 30, n_singles = 4, n_doubles = 2,
#'                            cells_per_condition = 5, n_control_cells = 20)
#'     as_anndata(sce)$write_h5ad(path)
#'     cat(describe_file(path))
#'     read_anndata(path)
#' }
read_anndata <- function(path, condition = "condition") {
  path <- .existing_file(path)
  .check_string(condition, "condition")
  as_sce(.py_call("datasets.read_anndata", path, condition_key = condition, raw = TRUE))
}

#' @rdname read_anndata
#' @export
read_scfoundation_norman <- function(path, drop_unmapped = TRUE) {
  as_sce(.py_call("datasets.read_scfoundation_norman", .existing_file(path), drop_unmapped = drop_unmapped,
                  raw = TRUE))
}

#' @rdname read_anndata
#' @export
describe_file <- function(path) {
  .py_call("datasets.describe_file", .existing_file(path))
}

#' Gene embeddings and GO annotations from files
#'
#' `read_embedding_table()`: a table of gene embeddings (genes × dimensions;
#' `.tsv`, `.csv` or `.parquet`). `read_go_edges()`: a GO graph's weighted
#' edges (`source`, `target`, `weight`), as GEARS ships them.
#' `read_go_embedding()`: the paper's GO spectral embedding of such a file.
#' `read_gene2go()`: NCBI's gene2go, or GEARS' pickled gene → GO terms.
#' `jaccard_go_graph()`: the GO graph of GEARS (Jaccard similarity of the
#' genes' GO terms, top `top_k` per gene). `read_scgpt_gene_embedding()`:
#' scGPT's gene token embeddings from its checkpoint folder.
#' `read_scfoundation_gene_embedding()`: scFoundation's gene embeddings from
#' its checkpoint. `load_embedding()`: an embedding from a spec string
#' (`"go:PATH"`, `"scgpt:FOLDER"`, `"table:PATH"`, ...), as the command line
#' takes them.
#'
#' @param path,folder,checkpoint The file or folder.
#' @param transpose The table is dimensions × genes.
#' @param n_components Dimensions of the embedding.
#' @param gene2go A named list: gene -> GO terms (as `read_gene2go()` gives).
#' @param genes The genes to connect (or, for scFoundation, its gene list or
#'   the file that holds it).
#' @param top_k,threshold Edges kept per gene, and the smallest similarity.
#' @param spec An embedding spec string.
#' @param ... Further options of Python's `read_go_embedding()`
#'   (`which`, `scaled`, `backend`).
#' @return A data frame with genes as row names (an embedding), or a data
#'   frame of edges; `read_gene2go()`: a named list.
#' @export
#' @examples
#' if (linpert_available()) {
#'     edges <- data.frame(source = c("A", "B", "C"), target = c("B", "C", "A"),
#'                         importance = c(1, 0.5, 0.2))
#'     path <- tempfile(fileext = ".csv")
#'     utils::write.csv(edges, path, row.names = FALSE)
#'     read_go_edges(path)
#'     read_go_embedding(path, n_components = 1)
#' }
read_embedding_table <- function(path, transpose = FALSE) {
  .py_call("embeddings.read_embedding_table", .existing_file(path), transpose = isTRUE(transpose))
}

#' @rdname read_embedding_table
#' @export
read_go_edges <- function(path) {
  .py_call("embeddings.read_go_edges", .existing_file(path))
}

#' @rdname read_embedding_table
#' @export
read_go_embedding <- function(path, n_components = 2, ...) {
  .py_call("embeddings.read_go_embedding", .existing_file(path),
           n_components = .check_count(n_components, "n_components"), ...)
}

#' @rdname read_embedding_table
#' @export
read_gene2go <- function(path) {
  terms <- .py_call("embeddings.read_gene2go", .existing_file(path))
  lapply(terms, function(t) sort(as.character(unlist(t))))
}

#' @rdname read_embedding_table
#' @export
jaccard_go_graph <- function(gene2go, genes, top_k = 20, threshold = 0.1) {
  if (!is.list(gene2go) || is.null(names(gene2go))) .abort("`gene2go` must be a named list: gene -> GO terms.")
  .py_call("embeddings.jaccard_go_graph", lapply(gene2go, function(t) as.list(as.character(t))),
           as.list(as.character(genes)), top_k = .check_count(top_k, "top_k"),
           threshold = .check_number(threshold, "threshold", -Inf, Inf))
}

#' @rdname read_embedding_table
#' @export
read_scgpt_gene_embedding <- function(folder) {
  if (!dir.exists(folder)) .abort("`folder` must be scGPT's checkpoint folder; '", folder, "' is not a folder.",
                                  class = "linpert_file_error")
  .py_call("embeddings.read_scgpt_gene_embedding", normalizePath(folder))
}

#' @rdname read_embedding_table
#' @export
read_scfoundation_gene_embedding <- function(checkpoint, genes) {
  genes <- if (length(genes) == 1 && file.exists(genes)) normalizePath(genes) else as.list(as.character(genes))
  .py_call("embeddings.read_scfoundation_gene_embedding", .existing_file(checkpoint), genes)
}

#' @rdname read_embedding_table
#' @export
load_embedding <- function(spec) {
  .check_string(spec, "spec")
  .py_call("embeddings.load_embedding", spec)
}

#' Score prediction files, as a challenge scores a submission
#'
#' `score_files()`: scores an `.h5ad` of predicted cells against an `.h5ad`
#' of observed cells (cell-eval's file layout: a `target_gene` column with
#' `non-targeting` controls) with every metric and, by default, calibrated
#' between the mean baseline and the replicate ceiling (Python
#' `linpert.submission.score_submission()`). `calibrated_table()`: the
#' calibrated scores of such a table against another reference.
#'
#' @param predicted,observed `.h5ad` files, or `SingleCellExperiment`s.
#' @param condition The cells' condition column.
#' @param control The control's label.
#' @param metrics Metric names, or `NULL` for all.
#' @param label The submission's name in the table.
#' @param calibrate Add calibrated scores.
#' @param table A table from `score_files()`.
#' @param reference The model that scores 0.
#' @return A data frame, one row per metric (and model).
#' @export
#' @examples
#' if (linpert_available()) {
#'     # cell-eval's layout: the target gene per cell, "non-targeting" controls
#'     sce <- simulate_screen(n_genes = 40, n_singles = 6, n_doubles = 0,
#'                            cells_per_condition = 10, n_control_cells = 40,
#'                            seed = 1)
#'     sce$target_gene <- ifelse(sce$condition == "ctrl", "non-targeting",
#'                               sub("+ctrl", "", sce$condition, fixed = TRUE))
#'     score_files(sce, sce, metrics = "mae", calibrate = FALSE)
#' }
score_files <- function(predicted, observed, condition = "target_gene", control = "non-targeting", metrics = NULL,
                        label = "submission", calibrate = TRUE) {
  .check_string(condition, "condition")
  .check_string(control, "control")
  .py_call("submission.score_submission", .cells_or_file(predicted, "predicted"),
           .cells_or_file(observed, "observed"), perturbation_key = condition, control = control,
           metrics = if (!is.null(metrics)) as.list(as.character(metrics)), label = label,
           calibrate = isTRUE(calibrate))
}

#' @rdname score_files
#' @export
calibrated_table <- function(table, reference = "observed_mean") {
  .py_call("submission.calibrated", table, reference = reference)
}

#' The report of one or more run folders
#'
#' Writes the self-contained HTML report that the command line writes: the
#' findings, the scorecard, every figure, the published rows beside the run
#' (Python `linpert.report.write_report()`). A file at `out_html` that
#' linpert did not write is never overwritten.
#'
#' @param run_folders Run folders (the `out` of [run_benchmark()]).
#' @param out_html The HTML file to write.
#' @param title The report's title.
#' @return The path of the report, invisibly.
#' @export
#' @examples
#' if (linpert_available()) {
#'     out <- tempfile("run-")
#'     pb <- pseudobulk(simulate_screen(n_genes = 60, n_singles = 8,
#'                                      n_doubles = 10, cells_per_condition = 10,
#'                                      n_control_cells = 40, seed = 1))
#'     res <- run_benchmark(pb, seeds = 1, out = out, n_genes = 60)
#'     write_report(out, file.path(out, "report.html"))
#' }
write_report <- function(run_folders, out_html, title = NULL) {
  missing <- run_folders[!dir.exists(run_folders)]
  if (length(missing)) .abort("Not a run folder: '", missing[1], "'. Pass run_benchmark()'s `out`.",
                              class = "linpert_file_error")
  .check_string(out_html, "out_html")
  path <- .py_call("report.write_report", as.list(normalizePath(run_folders)),
                   normalizePath(out_html, mustWork = FALSE), title = title)
  invisible(path)
}

#' Where linpert keeps its data, and what it can download
#'
#' `linpert_data_dir()`: the cache folder (`LINPERT_DATA_DIR`, else
#' `~/.cache/linpert`). `list_resources()`: every dataset and file linpert
#' can download, where from, and whether it is cached. `fetch_resource()`:
#' download one (resumable, verified) and return its path.
#'
#' @param cache_dir The cache folder, or `NULL` for the default.
#' @param name A resource's name (see `list_resources()`).
#' @param url Download from this address instead (a mirror).
#' @param progress Show the download's progress.
#' @return A path, or a data frame.
#' @export
#' @examples
#' if (linpert_available()) {
#'     linpert_data_dir()
#'     list_resources()[, c("name", "cached")]
#' }
linpert_data_dir <- function(cache_dir = NULL) {
  .py_call("datasets.data_dir", cache_dir)
}

#' @rdname linpert_data_dir
#' @export
list_resources <- function(cache_dir = NULL) {
  table <- .py_call("datasets.list_resources", cache_dir = cache_dir)
  data.frame(name = rownames(table), table, row.names = NULL, check.names = FALSE)
}

#' @rdname linpert_data_dir
#' @export
fetch_resource <- function(name, cache_dir = NULL, url = NULL, progress = interactive()) {
  .check_string(name, "name")
  .py_call("datasets.fetch", name, cache_dir = cache_dir, url = url, progress = isTRUE(progress))
}

.existing_file <- function(path) {
  .check_string(path, "path")
  if (!file.exists(path) || dir.exists(path)) {
    .abort("No file at '", path, "'.", class = "linpert_file_error")
  }
  normalizePath(path)
}

# An .h5ad path, or cells as AnnData.
.cells_or_file <- function(x, what) {
  if (methods::is(x, "SummarizedExperiment")) return(as_anndata(x))
  if (is.character(x) && length(x) == 1) return(.existing_file(x))
  .abort("`", what, "` must be an .h5ad file or a SingleCellExperiment.")
}
