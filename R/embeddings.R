#' Gene embeddings for the linear model
#'
#' `go_embedding()` is the adjacency spectral embedding of a weighted gene
#' graph (the paper's GO perturbation embedding), computed **natively with
#' igraph** (`embed_adjacency_matrix()`) when igraph is installed, else by
#' linpert's Python implementation. Eigenvector signs are arbitrary, so
#' each column is flipped to make its largest-magnitude entry positive, the
#' same convention as Python's `linpert.embeddings.go_embedding()`.
#'
#' `random_embedding()` draws N(0, 1) vectors (a gene's vector depends only
#' on `seed` and its name); `transfer_embedding()` takes the PCA scores of
#' another screen's single perturbations (the paper's K562 ↔ RPE1 transfer).
#'
#' @param edges A data frame with columns `source`, `target`, `importance`
#'   (both directions listed; repeated pairs are summed).
#' @param n_components The number of dimensions.
#' @param which `"lm"` (largest magnitude), `"la"` (largest algebraic) or
#'   `"sa"` (smallest algebraic) eigenvalues.
#' @param scaled Multiply the eigenvectors by `sqrt(|eigenvalue|)`.
#' @param backend `"auto"` (igraph when installed), `"igraph"` or `"python"`.
#' @param genes Gene symbols.
#' @param seed The seed of the random vectors.
#' @param se A pseudobulk `SummarizedExperiment` of another screen.
#'
#' @return A data frame, genes (row names, sorted) × `dim1`, `dim2`, ...;
#'   `go_embedding()` adds the attributes `eigenvalues` and `backend`.
#'   Pass it to [fit_model()] as `perturbation_embedding` or
#'   `gene_embedding`.
#' @export
#' @examples
#' edges <- data.frame(source = c("A", "B", "B", "C"), target = c("B", "A", "C", "B"),
#'                     importance = c(1, 1, 0.5, 0.5))
#' go_embedding(edges, n_components = 1)
go_embedding <- function(edges, n_components = 2, which = c("lm", "la", "sa"), scaled = TRUE,
                         backend = c("auto", "igraph", "python")) {
  which <- match.arg(which)
  backend <- match.arg(backend)
  edges <- .check_edges(edges)
  n_components <- .check_count(n_components, "n_components")
  if (!is.logical(scaled) || length(scaled) != 1 || is.na(scaled)) .abort("`scaled` must be TRUE or FALSE.")
  has_igraph <- requireNamespace("igraph", quietly = TRUE)
  if (backend == "auto") backend <- if (has_igraph) "igraph" else "python"
  if (backend == "igraph" && !has_igraph) {
    .abort("backend = \"igraph\" needs the R package 'igraph' (apt-get install r-cran-igraph, or ",
         "install.packages(\"igraph\")); or use backend = \"python\".")
  }
  genes <- sort(unique(c(edges$source, edges$target)), method = "radix")
  if (n_components >= length(genes)) {
    .abort("`n_components` (", n_components, ") must be below the number of genes (", length(genes), ").")
  }
  if (backend == "python") {
    res <- .as_r(.linpert_bridge()$go_embedding_python(
      .frame_to_python(edges), n_components, which, scaled
    ))
    out <- .frame_from_python(res$embedding)
    values <- unlist(res$eigenvalues)
  } else {
    emb <- .embed_igraph(edges, genes, n_components, which)
    values <- emb$D
    x <- if (scaled) sweep(emb$X, 2, sqrt(abs(values)), `*`) else emb$X
    x <- .normalize_signs(x)
    out <- as.data.frame(x, row.names = genes)
    names(out) <- paste0("dim", seq_len(n_components))
  }
  attr(out, "eigenvalues") <- values
  attr(out, "backend") <- backend
  out
}

.check_edges <- function(edges) {
  if (!is.data.frame(edges) || !all(c("source", "target", "importance") %in% names(edges))) {
    .abort("`edges` must be a data frame with columns source, target, importance (e.g. GEARS' go_essential_all.csv ",
         "read with read.csv()).")
  }
  edges <- data.frame(source = as.character(edges$source), target = as.character(edges$target),
                      importance = as.numeric(edges$importance), stringsAsFactors = FALSE)
  if (anyNA(edges) || nrow(edges) == 0) .abort("`edges` has no rows or has NA entries.")
  edges
}

# The paper's calls: sparseMatrix (sums repeated pairs) -> undirected weighted graph -> embed_adjacency_matrix.
.embed_igraph <- function(edges, genes, k, which) {
  n <- length(genes)
  A <- Matrix::sparseMatrix(i = match(edges$source, genes), j = match(edges$target, genes),
                            x = edges$importance, dims = c(n, n))
  if (max(abs(A - Matrix::t(A))) > 0) {
    warning("The edge table is not symmetric; the larger weight of each pair is used. List both directions ",
            "to silence this.", call. = FALSE)
    A <- pmax(A, Matrix::t(A))
  }
  graph <- igraph::graph_from_adjacency_matrix(A, mode = "undirected", weighted = TRUE)
  emb <- igraph::embed_adjacency_matrix(graph, no = k, which = which, scaled = FALSE)
  list(D = as.numeric(emb$D), X = as.matrix(emb$X))
}

# Flip each column so that its largest-magnitude entry (the first, on ties) is positive, as Python does.
.normalize_signs <- function(x) {
  for (j in seq_len(ncol(x))) {
    biggest <- x[which.max(abs(x[, j])), j]
    if (biggest < 0) x[, j] <- -x[, j]
  }
  x
}

#' @rdname go_embedding
#' @export
random_embedding <- function(genes, n_components = 10, seed = 0) {
  if (!is.character(genes) || length(genes) == 0 || anyNA(genes)) {
    .abort("`genes` must be gene symbols, e.g. rownames(pb).")
  }
  n_components <- .check_count(n_components, "n_components")
  seed <- .check_count(seed, "seed", min = 0)
  .frame_from_python(.linpert_bridge()$random_embedding(as.character(genes), n_components, seed))
}

#' @rdname go_embedding
#' @export
transfer_embedding <- function(se, n_components = 10) {
  n_components <- .check_count(n_components, "n_components")
  .frame_from_python(.linpert_bridge()$transfer_embedding(.pseudobulk_to_python(se), n_components))
}
