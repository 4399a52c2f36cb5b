"""The paper's linear model (equations (1)–(3)): ``Y ≈ G W Pᵀ + b``, solved in closed form with ridge penalties.

With ``Y`` the training pseudobulk minus the control profile (genes × conditions), ``G`` a gene embedding
(genes × K) and ``P`` a perturbation embedding (L × conditions), the model minimises
``||Y − (G W P + b)||² + λ||W||²`` approximately by the two-sided ridge solution

    W = (GᵀG + λI)⁻¹ Gᵀ (Y − b) Pᵀ (P Pᵀ + λI)⁻¹,   b = rowMeans(Y),

and predicts a perturbation with embedding ``p`` as ``G W p + b + ctrl``.

The edges follow the paper's ``run_linear_pretrained_model.R``: ``ctrl`` is embedded as zero unless the perturbation
embedding has a ``ctrl`` row (a transfer embedding does: the reference control's PC score); random embeddings are R's
``rnorm`` after ``set.seed(seed)``, a gene embedding one vector per gene, a perturbation embedding one vector per
condition of the split (``ctrl`` too), in the order the script draws them; the seed is the split's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, Condition, parse_condition
from .._threads import one_blas_thread
from ._base import PerturbationModel, TrainingData, check_training, require_paths, split_context

if TYPE_CHECKING:
    from anndata import AnnData

EMBEDDINGS = ("pca", "random")


def pca_gene_scores(X: np.ndarray, n_components: int) -> np.ndarray:
    """PCA scores ``U·D`` of a genes × conditions matrix, genes as observations, each column centred, not scaled.

    This is what the paper's ``irlba::prcomp_irlba(X, n = K)$x`` computes, but exact: the top eigenpairs of the
    smaller Gram matrix (a truncated LAPACK eigensolver, deterministic) give the right singular vectors ``V``, and
    the scores are ``X_centred @ V``. Each component's sign is fixed so that its largest-magnitude score is
    positive (the linear model's predictions do not depend on the signs).

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [2.0, 4.1], [3.0, 5.9], [4.0, 8.0]])
    >>> pca_gene_scores(X, 1).round(2).ravel()
    array([ 3.35,  1.03, -1.03, -3.35])
    """
    X = np.asarray(X, dtype=np.float64)
    n_genes, n_cond = X.shape
    if not 1 <= n_components <= min(n_genes, n_cond):
        raise ValueError(
            f"n_components={n_components} is not between 1 and min(genes, training conditions) = "
            f"{min(n_genes, n_cond)}. Lower n_components or train on more conditions."
        )
    Xc = X - X.mean(axis=0)
    from scipy.linalg import eigh

    with one_blas_thread():  # the same bits on any machine (linpert._threads)
        if n_cond <= n_genes:
            values, V = eigh(Xc.T @ Xc, subset_by_index=[n_cond - n_components, n_cond - 1])
            scores = Xc @ V[:, ::-1]
        else:
            values, U = eigh(Xc @ Xc.T, subset_by_index=[n_genes - n_components, n_genes - 1])
            scores = U[:, ::-1] * np.sqrt(np.clip(values[::-1], 0.0, None))
    biggest = np.abs(scores).argmax(axis=0)
    signs = np.sign(scores[biggest, np.arange(n_components)])
    signs[signs == 0] = 1.0
    return scores * signs


def _draw_order(conditions, train) -> list[str]:
    """The order in which the paper's script draws a random vector per condition: its pseudobulk's columns, which
    follow the conditions' first appearance among the cells (``uns["linpert"]["condition_order"]``, recorded by
    :func:`linpert.pseudobulk`); conditions of unknown order follow in code-point order."""
    wanted = set(map(str, conditions))
    known = (getattr(train, "uns", {}) or {}).get("linpert", {}).get("condition_order", [])
    first = [c for c in dict.fromkeys(map(str, known)) if c in wanted]
    return first + sorted(wanted.difference(first))


def _irlba_draws(n_genes: int, n_conditions: int) -> int:
    """How many normals ``irlba::prcomp_irlba`` takes from R's stream for the paper's training PCA: its start
    vector, one per column, unless the matrix is tiny (fewer than 6 rows or columns: then it calls ``svd``)."""
    return n_conditions if min(n_genes, n_conditions) >= 6 else 0


def _check_embedding(value: Any, what: str) -> pd.DataFrame | str:
    if isinstance(value, str):
        if value in EMBEDDINGS:
            return value
        from ..embeddings import is_embedding_spec, load_embedding

        if not is_embedding_spec(value):
            raise ValueError(
                f"{what}={value!r} is not one of {EMBEDDINGS}, an embedding spec such as 'go:<go_essential_all.csv>' "
                "or 'scgpt:<model folder>' (see linpert.embeddings), or a DataFrame indexed by gene symbol."
            )
        value = load_embedding(value)  # resolved at fit time, cached per file
    if not isinstance(value, pd.DataFrame):
        raise TypeError(
            f"{what} must be 'pca', 'random' or a pandas DataFrame indexed by gene symbol, got {type(value).__name__}."
        )
    if value.shape[1] == 0:
        raise ValueError(f"The {what} DataFrame has no columns; it needs one column per embedding dimension.")
    if value.index.has_duplicates:
        dup = sorted(set(value.index[value.index.duplicated()].astype(str)))[:5]
        raise ValueError(f"The {what} DataFrame has duplicated gene symbols {dup}; keep one row per gene.")
    try:
        table = value.astype(np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"The {what} DataFrame must hold numbers only: {err}") from None
    table.index = table.index.astype(str)
    # a gene whose embedding is not finite counts as missing
    return table[np.isfinite(table.to_numpy()).all(axis=1)]


class LinearModel(PerturbationModel):
    """The paper's linear model ``Y ≈ G W Pᵀ + b`` with PCA (or external, or random) gene and perturbation embeddings.

    Fitting, as the paper's code does (spec §3):

    1. ``Y`` = training pseudobulk − ctrl profile (genes × training conditions; the ctrl column is zero).
    2. ``G`` = PCA gene scores (``U·D``, genes × K) of the genes × training-conditions matrix of pseudobulk log
       expression, each condition centred, not scaled (see :func:`pca_gene_scores`).
    3. ``P``: a perturbation's embedding is the row of the perturbation embedding for its target gene; ``ctrl`` is
       the zero vector unless the embedding has a ``ctrl`` row (as the paper's script: a transfer embedding gives
       the reference control's PC score). A training perturbation whose target has no embedding (with ``"pca"``:
       is not a measured gene) is dropped and listed in ``dropped_``.
    4. ``b = rowMeans(Y)`` over the kept conditions; ``W = (GᵀG + λI)⁻¹ Gᵀ (Y − b) Pᵀ (P Pᵀ + λI)⁻¹``; NaN entries of
       ``W`` are set to 0.
    5. Prediction ``G W p + b + ctrl``.

    linpert's extension: a double or combination perturbation is embedded as the **sum** of its genes' embeddings,
    both when training on doubles and when predicting them (the paper's code embeds single perturbations only).

    Parameters
    ----------
    n_components
        K, the number of principal components for ``"pca"`` embeddings and the dimension of ``"random"`` ones.
    ridge
        λ, the ridge penalty on both sides.
    gene_embedding
        ``"pca"`` (from the training data), ``"random"`` (N(0, 1), ``n_components`` columns), a DataFrame indexed
        by gene symbol with any number of columns (e.g. scGPT's 512-d gene encoder), or an embedding spec string
        loaded at ``fit`` (``"scgpt:<folder>"``, ``"scfoundation:<models.ckpt>?genes=<file>"``,
        ``"table:<file>"``; see :mod:`linpert.embeddings`). Genes it lacks are predicted as NaN and listed in
        ``missing_genes_``.
    perturbation_embedding
        ``"pca"`` (the training PCA's gene scores), ``"random"`` (N(0, 1), ``n_components`` columns, one vector per
        condition of the split, ``ctrl`` included, as the paper's script draws them), a DataFrame indexed by the
        target gene symbol (and optionally ``ctrl``), any number of columns, or an embedding spec string
        (``"go"``/``"go:<go_essential_all.csv>"`` for GEARS' GO embedding, ``"transfer:<pseudobulk.h5ad>"``,
        ``"table:<file>"``). A perturbation of a gene it lacks is predicted as NaN, with the reason.
    seed
        Seed of the ``"random"`` embeddings, R's ``set.seed(seed)``: with the same seed the vectors are the paper's
        script's, number for number. ``None``: the split's seed when :func:`linpert.benchmark.run` fits the model
        (as the paper's scripts took the split's seed), else fresh entropy (kept in ``seed_``).

    The random perturbation embedding draws one vector per condition of the split, in the order the conditions first
    appear among the cells (the order of the paper's pseudobulk; :func:`linpert.pseudobulk` records it).
    :func:`linpert.benchmark.run` tells the model the split's conditions (``uns["linpert"]["split"]`` of the training
    data); fitted directly, the model knows only the training conditions, and predicts any other as NaN with that
    reason.

    Attributes
    ----------
    coef_
        W, K × L.
    intercept_
        b, one value per training gene.
    gene_embedding_, perturbation_embedding_
        The embeddings used: DataFrames indexed by gene, except a random perturbation embedding, indexed by the
        conditions of the split.
    dropped_
        Training conditions left out of the fit, with the reason.
    missing_genes_
        Training genes without a gene embedding (predicted NaN).

    Examples
    --------
    >>> import anndata as ad
    >>> rng = np.random.default_rng(0)
    >>> genes = [f"G{i}" for i in range(30)]
    >>> names = ["ctrl"] + [f"G{i}+ctrl" for i in range(12)]
    >>> train = ad.AnnData(rng.random((13, 30)), obs=pd.DataFrame(index=names), var=pd.DataFrame(index=genes))
    >>> model = LinearModel(n_components=3).fit(train)
    >>> pred = model.predict(["G20+ctrl", "NOTMEASURED+ctrl"])
    >>> pred.shape, bool(np.isfinite(pred.X[0]).all()), bool(np.isnan(pred.X[1]).all())
    ((2, 30), True, True)
    """

    name = "linear"

    def __init__(
        self,
        *,
        n_components: int = 10,
        ridge: float = 0.1,
        gene_embedding: str | pd.DataFrame = "pca",
        perturbation_embedding: str | pd.DataFrame = "pca",
        seed: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.ridge = ridge
        self.gene_embedding = gene_embedding
        self.perturbation_embedding = perturbation_embedding
        self.seed = seed

    def check_inputs(self) -> None:
        """The files the embedding specs name (``go:<file>``, ``scgpt:<folder>``, ...) exist."""
        from ..embeddings import is_embedding_spec, parse_embedding_spec

        for what in ("gene_embedding", "perturbation_embedding"):
            value = getattr(self, what)
            if is_embedding_spec(value) and parse_embedding_spec(value).path:
                require_paths(**{what: parse_embedding_spec(value).path})

    # ---------------------------------------------------------------------------------------------------- fit
    def fit(self, train: AnnData) -> LinearModel:
        """Fit W and b on a training pseudobulk (``ctrl`` included); returns ``self``."""
        k, ridge = self._check_params()
        gene_spec = _check_embedding(self.gene_embedding, "gene_embedding")
        pert_spec = _check_embedding(self.perturbation_embedding, "perturbation_embedding")
        data = check_training(train)
        self._remember(data)
        split = split_context(train)
        seed = self.seed if self.seed is not None else split.get("seed")
        self.seed_ = int(np.random.SeedSequence().entropy % 2**31 if seed is None else seed)
        self._conditions = _draw_order(split.get("conditions", data.conditions), train)

        pca = None
        if any(isinstance(spec, str) and spec == "pca" for spec in (gene_spec, pert_spec)):
            pca = pd.DataFrame(pca_gene_scores(data.X.T, k), index=data.genes)

        G = self._gene_matrix(gene_spec, data, pca, k)
        self.missing_genes_ = list(data.genes[~np.isfinite(G).all(axis=1)])
        if len(data.genes) - len(self.missing_genes_) < 2:
            raise ValueError(
                "Fewer than two training genes have a gene embedding; check that the gene_embedding DataFrame is "
                "indexed by the same gene symbols as the pseudobulk's var_names."
            )
        G[~np.isfinite(G).all(axis=1)] = np.nan

        self._set_perturbation_lookup(pert_spec, pca, k, self._random_offset(gene_spec, data, k))
        columns, vectors, self.dropped_ = [], [], {}
        for name in data.conditions:
            vector, reason = self._embed(parse_condition(name))
            if reason:
                self.dropped_[name] = reason
            else:
                columns.append(name)
                vectors.append(vector)
        if len(columns) < 2:  # ctrl alone
            raise ValueError(
                "No training perturbation has a perturbation embedding, so W cannot be fitted. With "
                "perturbation_embedding='pca' the targets must be measured genes; with a DataFrame, index it by "
                "the target gene symbols."
            )

        Y = (data.X[data.conditions.get_indexer(columns)] - data.ctrl).T  # genes × kept conditions
        b = Y.mean(axis=1)
        P = np.column_stack(vectors)  # L × kept conditions
        ok = ~np.isnan(G[:, 0])
        W = _solve_two_sided(G[ok], Y[ok] - b[ok, None], P, ridge)
        W[np.isnan(W)] = 0.0

        self.coef_ = W
        self.intercept_ = b
        self.gene_embedding_ = pd.DataFrame(G, index=data.genes)
        self.perturbation_embedding_ = self._pert_table
        self.n_train_ = len(columns)
        self._GW = G @ W  # genes × L, NaN rows for genes without an embedding
        return self

    def _check_params(self) -> tuple[int, float]:
        k, ridge = self.n_components, self.ridge
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_components must be a positive integer, got {k!r}.")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.number)) or not ridge >= 0:
            raise ValueError(f"ridge must be a non-negative number, got {ridge!r}.")
        if not np.isfinite(ridge):
            raise ValueError(f"ridge must be finite, got {ridge!r}.")
        return int(k), float(ridge)

    def _random_offset(self, gene_spec, data: TrainingData, k: int) -> int:
        """How many of R's normals the paper's script draws for the gene embedding before the perturbation one."""
        if isinstance(gene_spec, str) and gene_spec == "random":
            return len(data.genes) * k
        if isinstance(gene_spec, str) and gene_spec == "pca":
            return _irlba_draws(len(data.genes), len(data.conditions))
        return 0

    def _set_perturbation_lookup(self, spec, pca: pd.DataFrame | None, k: int, offset: int) -> None:
        """Keep the perturbation embedding as a table indexed by target gene, or by condition for "random"."""
        if isinstance(spec, pd.DataFrame):
            self._pert_table, self._pert_dim, self._pert_source = spec, spec.shape[1], "user"
        elif spec == "random":  # one vector per condition of the split, in the order R draws them
            from ..embeddings._r_random import r_rnorm

            draws = r_rnorm(len(self._conditions) * k, self.seed_, skip=offset).reshape(len(self._conditions), k)
            self._pert_table = pd.DataFrame(draws, index=pd.Index(self._conditions, name="condition", dtype=object))
            self._pert_dim, self._pert_source = k, spec
        else:
            self._pert_table, self._pert_dim, self._pert_source = pca, k, spec
        # plain lookups: pandas indexing per condition is slow
        self._pert_rows = dict(zip(self._pert_table.index.tolist(), range(len(self._pert_table))))
        self._pert_values = self._pert_table.to_numpy(dtype=np.float64)

    def _gene_matrix(self, spec, data: TrainingData, pca: pd.DataFrame | None, k: int) -> np.ndarray:
        if isinstance(spec, pd.DataFrame):
            return spec.reindex(data.genes).to_numpy(dtype=np.float64, copy=True)
        if spec == "pca":
            return pca.to_numpy(copy=True)
        from ..embeddings._r_random import r_rnorm

        # R's matrix(rnorm(genes * k), nrow = genes): filled column by column
        return r_rnorm(len(data.genes) * k, self.seed_).reshape(k, len(data.genes)).T.copy()

    # ------------------------------------------------------------------------------------------------ predict
    def _embed(self, cond: Condition) -> tuple[np.ndarray | None, str]:
        """The embedding of one condition (sum over its genes; ctrl's row, else zero, for ctrl) or ``None`` and
        the reason."""
        if self._pert_source == "random":  # a vector per condition, not per gene
            row = self._pert_rows.get(cond.name)
            if row is None:
                return None, ("no random perturbation embedding: it is drawn per condition of the split, and this "
                              "condition was not among them (fit through linpert.benchmark.run, which names them)")
            return self._pert_values[row], ""
        if cond.is_control:
            row = self._pert_rows.get(CONTROL)
            return (np.zeros(self._pert_dim) if row is None else self._pert_values[row]), ""
        missing = [g for g in cond.genes if g not in self._pert_rows]
        if missing:
            why = (
                "it is not a measured gene of the training data"
                if self._pert_source == "pca"
                else "it is not in the index of perturbation_embedding"
            )
            genes = ", ".join(repr(g) for g in missing)
            return None, f"no perturbation embedding for gene {genes}: {why}"
        return self._pert_values[[self._pert_rows[g] for g in cond.genes]].sum(axis=0), ""

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        P = np.zeros((self._pert_dim, len(conditions)))
        reasons = []
        for j, cond in enumerate(conditions):
            vector, reason = self._embed(cond)
            reasons.append(reason)
            if vector is not None:
                P[:, j] = vector
        X = (self._GW @ P).T + self.intercept_ + self.ctrl_
        return X, reasons


def _solve_two_sided(G: np.ndarray, Yc: np.ndarray, P: np.ndarray, ridge: float) -> np.ndarray:
    """``(GᵀG + λI)⁻¹ Gᵀ Yc Pᵀ (P Pᵀ + λI)⁻¹`` by two small linear solves (K × K and L × L)."""
    k, dim = G.shape[1], P.shape[0]
    try:
        with one_blas_thread():  # the same bits on any machine (linpert._threads)
            left = np.linalg.solve(G.T @ G + ridge * np.eye(k), G.T @ Yc)  # K × n
            # (P Pᵀ + λI) is symmetric, so right-multiplying by its inverse is a solve on the transpose
            return np.linalg.solve(P @ P.T + ridge * np.eye(dim), (left @ P.T).T).T
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"The normal equations are singular ({err}); use a positive ridge penalty (the paper uses 0.1)."
        ) from None
