"""GEARS' gene-gene GO graph and its adjacency spectral embedding (the paper's GO perturbation embedding, Fig. 2c).

The paper builds an undirected weighted graph from GEARS' ``go_essential_all.csv`` and embeds it with R igraph::

    gr <- graph_from_adjacency_matrix(sparseMatrix(i = source, j = target, x = importance),
                                      mode = "undirected", weighted = TRUE)
    emb <- embed_adjacency_matrix(gr, no = 2, which = "lm", scaled = TRUE)

igraph decomposes ``M = A + diag(cvec)``, where ``A`` is the weighted adjacency matrix (a self-loop counts once) and
``cvec = strength / (n - 1)`` (``strength`` counts a self-loop twice), and returns ``X = U·diag(√|λ|)`` for the
chosen eigenpairs. :func:`go_embedding` computes exactly that, in R or with scipy.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

WHICH = ("lm", "la", "sa")
BACKENDS = ("auto", "r", "python")
EDGE_COLUMNS = ("source", "target", "importance")
#: Graphs up to this many vertices are decomposed densely (exact, no iteration); larger ones with ARPACK.
DENSE_LIMIT = 2000

_R_EMBED = """function(i, j, x, n, no, which, scaled) {
    A <- Matrix::sparseMatrix(i = as.integer(i), j = as.integer(j), x = x, dims = c(as.integer(n), as.integer(n)))
    gr <- igraph::graph_from_adjacency_matrix(A, mode = "undirected", weighted = TRUE)
    emb <- igraph::embed_adjacency_matrix(gr, no = as.integer(no), which = which, scaled = scaled)
    list(D = as.numeric(emb$D), X = as.matrix(emb$X))
}"""


# ------------------------------------------------------------------------------------------------- readers
def read_go_edges(path: str | os.PathLike) -> pd.DataFrame:
    """Read a GO edge table like GEARS' ``go_essential_all.csv``: columns ``source``, ``target``, ``importance``.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "go.csv"
    >>> _ = path.write_text("source,target,importance\\nA,A,1.0\\nA,B,0.5\\n")
    >>> read_go_edges(path)
      source target  importance
    0      A      A         1.0
    1      A      B         0.5
    """
    try:
        table = pd.read_csv(path, dtype={"source": str, "target": str})
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        from .._io import describe_file

        raise ValueError(
            f"{str(path)!r} is not a CSV edge table: it is {describe_file(path)} ({type(err).__name__}). Pass GEARS' "
            "go_essential_all.csv (columns source, target, importance): linpert.datasets.fetch('go_essential_all')."
        ) from None
    return _check_edges(table, what=f"The GO edge table {str(path)!r}")


def read_gene2go(path: str | os.PathLike) -> dict[str, frozenset[str]]:
    """Read GEARS' ``gene2go_all.pkl``: a pickled dict gene symbol → GO terms (set or list), as frozensets.

    Only open pickles you trust: unpickling runs code. Get GEARS' file with
    ``linpert.datasets.fetch("gene2go_all")``.
    """
    try:
        with open(path, "rb") as handle:
            data = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as err:
        from .._io import describe_file

        raise ValueError(
            f"{str(path)!r} cannot be unpickled ({type(err).__name__}: {err}); it is {describe_file(path)}. Pass "
            "GEARS' gene2go_all.pkl: linpert.datasets.fetch('gene2go_all')."
        ) from None
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{str(path)!r} holds a {type(data).__name__}, not a dict gene -> GO terms. Pass GEARS' gene2go_all.pkl."
        )
    return {str(gene): frozenset(str(t) for t in terms) for gene, terms in data.items()}


def _check_edges(edges: pd.DataFrame, *, what: str = "The edge table") -> pd.DataFrame:
    if not isinstance(edges, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame with columns source, target, importance.")
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise ValueError(
            f"{what} lacks the columns {missing}; it needs source, target and importance, like GEARS' "
            "go_essential_all.csv."
        )
    table = edges.loc[:, list(EDGE_COLUMNS)].reset_index(drop=True)
    table["source"] = table["source"].astype(str)
    table["target"] = table["target"].astype(str)
    table["importance"] = pd.to_numeric(table["importance"], errors="coerce").astype(np.float64)
    bad = ~np.isfinite(table["importance"].to_numpy()) | (table["importance"].to_numpy() < 0)
    if bad.any():
        raise ValueError(
            f"{what} has {int(bad.sum())} importance values that are missing, not finite or negative "
            f"(first at row {int(np.flatnonzero(bad)[0])}); edge weights must be non-negative numbers."
        )
    return table


# ----------------------------------------------------------------------------------------- Jaccard graph
def jaccard_go_graph(
    gene2go: Mapping[str, Iterable[str]],
    genes: Iterable[str],
    *,
    top_k: int | None = 20,
    threshold: float = 0.1,
    block_size: int = 2000,
) -> pd.DataFrame:
    """The gene×gene GO graph as GEARS builds it: Jaccard similarity of GO sets, thresholded, top-k per target.

    GEARS' ``make_GO`` lists every ordered pair ``(g1, g2)`` of ``genes`` (self-pairs included, score 1) with
    ``|GO(g1) ∩ GO(g2)| / |GO(g1) ∪ GO(g2)| > threshold``, in the order of ``genes``; this is the content of
    ``go_essential_all.csv``, which the paper embeds whole (``top_k=None``). GEARS' model graph
    (``get_similarity_network``) then keeps, per ``target``, the ``top_k + 1`` rows of highest importance (ties:
    first listed), grouped by target in sorted order.

    Parameters
    ----------
    gene2go
        Gene symbol → GO terms (see :func:`read_gene2go`).
    genes
        The genes of the graph, in order; genes without GO terms are left out (GEARS would fail on them), and
        repeats are ignored.
    top_k
        Keep the ``top_k + 1`` strongest edges per target, as GEARS' model does (its ``num_similar_genes_go_graph``
        default is 20); ``None`` keeps every edge above the threshold (the paper's input).
    threshold
        Keep pairs whose Jaccard similarity is strictly greater than this (GEARS: 0.1).
    block_size
        Genes per block of the sparse computation (bounds memory; does not change the result).

    Returns
    -------
    DataFrame
        Columns ``source``, ``target``, ``importance``.

    Examples
    --------
    >>> go = {"A": {"t1", "t2"}, "B": {"t2", "t3"}, "C": {"t9"}}
    >>> jaccard_go_graph(go, ["A", "B", "C"], top_k=None)
      source target  importance
    0      A      A    1.000000
    1      A      B    0.333333
    2      B      A    0.333333
    3      B      B    1.000000
    4      C      C    1.000000
    """
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must lie in [0, 1), got {threshold!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 0):
        raise ValueError(f"top_k must be a non-negative integer or None, got {top_k!r}.")
    if isinstance(genes, str):
        raise TypeError(f"genes must be a list of gene symbols, got the string {genes!r}.")
    kept = [g for g in dict.fromkeys(str(g) for g in genes) if len(gene2go.get(g, ())) > 0]
    if not kept:
        raise ValueError("None of the genes has GO terms in gene2go; check that both use the same gene symbols.")

    terms: dict[str, int] = {}
    rows, cols = [], []
    for i, gene in enumerate(kept):
        for term in set(gene2go[gene]):
            rows.append(i)
            cols.append(terms.setdefault(str(term), len(terms)))
    B = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(kept), len(terms)))
    size = np.asarray(B.sum(axis=1)).ravel()

    sources, targets, scores = [], [], []
    for start in range(0, len(kept), block_size):
        shared = (B[start : start + block_size] @ B.T).tocoo()  # pairs sharing at least one term
        i, j = shared.row + start, shared.col
        score = shared.data / (size[i] + size[j] - shared.data)
        keep = score > threshold
        sources.append(i[keep])
        targets.append(j[keep])
        scores.append(score[keep])
    i, j, score = np.concatenate(sources), np.concatenate(targets), np.concatenate(scores)
    order = np.lexsort((j, i))  # GEARS' loop order: g1 (source) outer, g2 (target) inner
    names = np.asarray(kept, dtype=object)
    edges = pd.DataFrame({"source": names[i[order]], "target": names[j[order]], "importance": score[order]})
    if top_k is None:
        return edges
    # GEARS: groupby('target').apply(lambda x: x.nlargest(k + 1, ['importance'])); pandas' own nlargest keeps its
    # order among tied importances, so it is used as is
    parts = [group.nlargest(int(top_k) + 1, "importance") for _, group in edges.groupby("target", sort=True)]
    return pd.concat(parts).reset_index(drop=True)


# ------------------------------------------------------------------------------------ spectral embedding
def _adjacency(edges: pd.DataFrame) -> tuple[sp.csr_matrix, pd.Index]:
    """The symmetric weighted adjacency matrix (repeated pairs summed, as ``sparseMatrix`` does) and its genes."""
    genes = pd.Index(sorted(set(edges["source"]) | set(edges["target"])), name="gene")
    i = genes.get_indexer(edges["source"])
    j = genes.get_indexer(edges["target"])
    A = sp.csr_matrix((edges["importance"].to_numpy(), (i, j)), shape=(len(genes), len(genes)))
    A.sum_duplicates()
    asymmetry = abs(A - A.T)
    if asymmetry.nnz and asymmetry.max() > 0:
        warnings.warn(
            "The edge table is not symmetric (some (source, target) pairs lack their reverse or have another "
            "weight). As R igraph 2.x does for mode = 'undirected', the larger weight of each pair is used; "
            "list both directions to silence this.",
            UserWarning,
            stacklevel=3,
        )
        A = A.maximum(A.T).tocsr()
    A.eliminate_zeros()
    return A, genes


def _pick(values: np.ndarray, which: str, k: int) -> np.ndarray:
    """Indices of the ``k`` eigenvalues igraph reports, in its order."""
    if which == "lm":
        order = np.argsort(-np.abs(values), kind="stable")
    elif which == "la":
        order = np.argsort(-values, kind="stable")
    else:
        order = np.argsort(values, kind="stable")
    return order[:k]


def _embed_python(A: sp.csr_matrix, k: int, which: str) -> tuple[np.ndarray, np.ndarray]:
    n = A.shape[0]
    strength = np.asarray(A.sum(axis=1)).ravel() + A.diagonal()  # a loop adds its weight twice to strength
    M = (A + sp.diags(strength / (n - 1))).tocsr()
    if n <= DENSE_LIMIT:
        values, vectors = np.linalg.eigh(M.toarray())
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(0).standard_normal(n)  # fixed start vector: repeatable to the last digit
        values, vectors = eigsh(M, k=k, which=which.upper(), v0=v0, tol=0)
    picked = _pick(values, which, k)
    return values[picked], vectors[:, picked]


def _embed_r(A: sp.csr_matrix, k: int, which: str) -> tuple[np.ndarray, np.ndarray]:
    from .. import _r

    coo = A.tocoo()
    result, _ = _r.call_function(
        _R_EMBED,
        coo.row + 1.0,
        coo.col + 1.0,
        coo.data,
        n=A.shape[0],
        no=k,
        which=which,
        scaled=False,
        packages=("Matrix", "igraph"),
    )
    return np.asarray(result["D"], dtype=np.float64).ravel(), np.asarray(result["X"], dtype=np.float64)


def normalize_signs(X: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry (the first, on ties) is positive.

    Examples
    --------
    >>> normalize_signs(np.array([[1.0, 2.0], [-3.0, 0.5]]))
    array([[-1. ,  2. ],
           [ 3. ,  0.5]])
    """
    X = np.array(X, dtype=np.float64, copy=True)
    if X.size == 0:
        return X
    biggest = np.abs(X).argmax(axis=0)
    signs = np.sign(X[biggest, np.arange(X.shape[1])])
    signs[signs == 0] = 1.0
    return X * signs


def _choose_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}.")
    if backend != "auto":
        return backend
    from .. import _r

    return "r" if _r.r_available("igraph") and _r.r_available("Matrix") else "python"


def go_embedding(
    edges: pd.DataFrame,
    *,
    n_components: int = 2,
    which: str = "lm",
    scaled: bool = True,
    backend: str = "auto",
) -> pd.DataFrame:
    """The adjacency spectral embedding of a weighted undirected gene graph, as igraph computes it for the paper.

    ``M = A + diag(strength / (n − 1))`` (igraph's default ``cvec``; a self-loop counts once in ``A`` and twice in
    ``strength``); the ``n_components`` eigenpairs chosen by ``which`` give ``X = U·diag(√|λ|)`` (``U`` when
    ``scaled=False``). The paper's GO perturbation embedding is ``go_embedding(read_go_edges(path))``.

    **Sign convention:** eigenvector signs are arbitrary (igraph 1.3.5's ARPACK start vector is not even seeded),
    so each column is flipped to make its largest-magnitude entry positive (see :func:`normalize_signs`). Both
    backends therefore return the same numbers.

    Parameters
    ----------
    edges
        Columns ``source``, ``target``, ``importance`` (see :func:`read_go_edges`, :func:`jaccard_go_graph`).
        Repeated pairs are summed (as ``Matrix::sparseMatrix`` does). The matrix should be symmetric (both
        directions listed); if not, the larger weight of each pair is used with a warning (igraph 2.x's fallback).
    n_components
        The number of eigenpairs (igraph's ``no``), between 1 and the number of genes − 1. The paper uses 2.
    which
        ``"lm"``: largest magnitude, by decreasing ``|λ|``; ``"la"``: largest algebraic, decreasing; ``"sa"``:
        smallest algebraic, increasing.
    scaled
        Multiply the eigenvectors by ``√|λ|``.
    backend
        ``"r"`` (R igraph through rpy2), ``"python"`` (scipy: dense ``eigh`` up to 2,000 genes, ARPACK ``eigsh``
        beyond) or ``"auto"`` (R when igraph is available, else Python).

    Returns
    -------
    DataFrame
        Genes (sorted) × ``dim1..dimK``; ``attrs['eigenvalues']`` holds the signed eigenvalues (igraph's ``D``) and
        ``attrs['backend']`` the backend used.

    Examples
    --------
    >>> edges = pd.DataFrame({"source": ["A", "B", "B", "C"], "target": ["B", "A", "C", "B"],
    ...                       "importance": [1.0, 1.0, 0.5, 0.5]})
    >>> emb = go_embedding(edges, n_components=1, backend="python")
    >>> list(emb.index), emb["dim1"].round(3).tolist()
    (['A', 'B', 'C'], [0.802, 0.988, 0.334])
    >>> round(emb.attrs["eigenvalues"][0], 3)
    1.731
    """
    if which not in WHICH:
        raise ValueError(f"which={which!r} is not one of {WHICH} (igraph's 'lm', 'la', 'sa').")
    backend = _choose_backend(backend)
    A, genes = _adjacency(_check_edges(edges))
    n = len(genes)
    k = n_components
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
        raise ValueError(
            f"n_components={k!r} must be an integer between 1 and the number of genes − 1 ({n - 1}); "
            "lower it or pass a larger graph."
        )
    values, vectors = (_embed_r if backend == "r" else _embed_python)(A, int(k), which)
    X = vectors * np.sqrt(np.abs(values)) if scaled else vectors
    out = pd.DataFrame(normalize_signs(X), index=genes, columns=[f"dim{d + 1}" for d in range(int(k))])
    out.attrs["eigenvalues"] = [float(v) for v in values]
    out.attrs["backend"] = backend
    return out


def read_go_embedding(path: str | os.PathLike | None = None, *, n_components: int = 2, **options) -> pd.DataFrame:
    """The paper's GO perturbation embedding from ``go_essential_all.csv`` (default: the registry's cached copy).

    ``path=None`` fetches GEARS' file with ``linpert.datasets.fetch("go_essential_all")`` (a download on first
    use). ``options`` go to :func:`go_embedding`.
    """
    if path is None:
        from ..datasets import fetch

        path = fetch("go_essential_all")
    return go_embedding(read_go_edges(Path(path)), n_components=n_components, **options)
