"""Linear decoders from a per-condition cell embedding to the pseudobulk (the paper's Geneformer, UCE and scBERT).

The paper embedded cells with each foundation model (Geneformer fine-tuned as a condition classifier then in-silico
deletion / overexpression; UCE zero-shot on control cells with the targets overwritten; scBERT fine-tuned), averaged
the embedding per condition and fitted sklearn's ``Ridge(alpha=1.0, fit_intercept=True)`` from embedding to
pseudobulk on the training conditions. :class:`EmbeddingDecoder` is that last step, in closed form. The embeddings
come from the user (a table or ``obsm`` of the cells), or the decoder computes them in ``fit`` from the model's
weights with its own code in an isolated environment (``GeneformerDecoder(model=, code=)``,
``ScBertDecoder(model=, code=)``, ``UceDecoder(model_files=)``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import Condition
from .._config import renamed
from ..models._base import PerturbationModel, check_training, require_paths
from ._base import peak_mib
from ._cells import per_cell_conditions
from ._geneformer import geneformer_embedding
from ._scbert import FINETUNE, scbert_embedding
from ._uce import uce_embedding

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["EmbeddingDecoder", "GeneformerDecoder", "ScBertDecoder", "UceDecoder", "condition_embedding", "ridge_fit"]


@renamed(alpha="ridge")
def ridge_fit(X: np.ndarray, Y: np.ndarray, *, ridge: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept, in closed form: ``Y ≈ X W + b``.

    ``W = (XcᵀXc + αI)⁻¹ XcᵀYc`` with column-centred ``Xc``, ``Yc`` and ``b = ȳ − x̄ W``: the solution of
    sklearn's ``Ridge(alpha=ridge, fit_intercept=True)``. With more features than samples the equivalent dual form
    ``W = Xcᵀ (XcXcᵀ + αI)⁻¹ Yc`` is solved instead.

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0]]); Y = np.array([[1.0], [3.0], [5.0]])
    >>> W, b = ridge_fit(X, Y, ridge=0.0)
    >>> np.round(W, 6).tolist(), np.round(b, 6).tolist()
    ([[2.0]], [1.0])
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}.")
    x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
    Xc, Yc = X - x_mean, Y - y_mean
    n, p = Xc.shape
    if p <= n:
        W = np.linalg.lstsq(Xc.T @ Xc + ridge * np.eye(p), Xc.T @ Yc, rcond=None)[0]
    else:
        W = Xc.T @ np.linalg.lstsq(Xc @ Xc.T + ridge * np.eye(n), Yc, rcond=None)[0]
    return W, y_mean - x_mean @ W


def condition_embedding(
    embedding: Any = None, *, cells: Any = None, obsm_key: str | None = None, condition_key: str = "condition"
) -> pd.DataFrame:
    """A per-condition embedding table (canonical condition names × dimensions).

    Parameters
    ----------
    embedding
        A DataFrame (conditions as index) or a ``.parquet`` / ``.csv`` file (conditions in the index, or the first
        column when the file has no index). Condition names are canonicalised; rows naming the same condition
        (``ctrl+A`` and ``A+ctrl``) are averaged.
    cells, obsm_key
        Instead of ``embedding``: cells (AnnData or ``.h5ad``) whose ``obsm[obsm_key]`` is averaged per condition.

    Examples
    --------
    >>> table = pd.DataFrame([[1.0, 0.0], [3.0, 2.0]], index=["ctrl+A", "A+ctrl"])
    >>> condition_embedding(table).to_numpy().tolist()
    [[2.0, 1.0]]
    """
    if (embedding is None) == (cells is None):
        raise ValueError("Give either embedding= (a table or file) or cells= with obsm_key=, not both or neither.")
    if embedding is not None:
        table = _read_table(embedding)
        names = np.asarray(table.index, dtype=str)
        values = table.to_numpy(dtype=np.float64)
        columns = table.columns
    else:
        from ._cells import load_cells

        cells = load_cells(cells, condition_key=condition_key)
        if obsm_key is None or obsm_key not in cells.obsm:
            raise ValueError(
                f"The cells have no obsm[{obsm_key!r}] (keys: {list(cells.obsm.keys())}). "
                "Pass obsm_key= naming the cell embedding, or embedding= a per-condition table."
            )
        names = np.asarray(cells.obs[condition_key], dtype=str)
        values = np.asarray(cells.obsm[obsm_key], dtype=np.float64)
        columns = pd.RangeIndex(values.shape[1])
    canonical = per_cell_conditions(names).to_numpy()
    frame = pd.DataFrame(values, columns=columns).groupby(canonical, sort=True).mean()
    frame.index = pd.Index(frame.index.astype(str))
    if not np.isfinite(frame.to_numpy()).all():
        raise ValueError("The embedding has non-finite values; remove or impute them.")
    return frame


def _read_table(embedding: Any) -> pd.DataFrame:
    if isinstance(embedding, pd.DataFrame):
        return embedding
    if not isinstance(embedding, (str, os.PathLike)):
        raise TypeError(f"embedding must be a DataFrame or a .parquet/.csv path, got {type(embedding).__name__}.")
    path = str(embedding)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"embedding={path!r} is not a file.")
    if path.endswith(".parquet"):
        table = pd.read_parquet(path)
        if isinstance(table.index, pd.RangeIndex):
            table = table.set_index(table.columns[0])
        return table
    if path.endswith(".csv"):
        return pd.read_csv(path, index_col=0)
    raise ValueError(f"embedding={path!r}: use a .parquet or .csv file (rows: conditions, columns: dimensions).")


class EmbeddingDecoder(PerturbationModel):
    """Ridge regression from a per-condition embedding to the pseudobulk, fitted on the training conditions.

    Parameters
    ----------
    embedding
        Per-condition embedding: DataFrame or ``.parquet`` / ``.csv`` (see :func:`condition_embedding`).
    cells, obsm_key
        Instead of ``embedding``: cells whose ``obsm[obsm_key]`` is averaged per condition.
    ridge
        Ridge penalty (the paper: sklearn's default 1.0); the intercept is not penalised.
    condition_key
        The column of ``cells.obs`` that holds the conditions.

    Notes
    -----
    Training conditions without an embedding are left out of the fit (listed in ``dropped_``); a requested
    condition without one is NaN with a reason.

    Examples
    --------
    >>> import anndata
    >>> emb = pd.DataFrame([[0.0], [1.0], [2.0]], index=["ctrl", "A+ctrl", "B+ctrl"])
    >>> train = anndata.AnnData(np.array([[1.0], [2.0]]), obs=pd.DataFrame(index=["ctrl", "A+ctrl"]))
    >>> EmbeddingDecoder(embedding=emb, ridge=0.0).fit(train).predict(["B+ctrl"]).X.round(6).tolist()
    [[3.0]]
    """

    name = "embedding_decoder"
    #: The ``obsm`` key the subclasses read by default.
    default_obsm_key: str | None = None

    @renamed(alpha="ridge")
    def __init__(
        self,
        *,
        embedding: Any = None,
        cells: Any = None,
        obsm_key: str | None = None,
        ridge: float = 1.0,
        condition_key: str = "condition",
    ) -> None:
        self.embedding = embedding
        self.cells = cells
        self.obsm_key = obsm_key
        self.ridge = ridge
        self.condition_key = condition_key

    def fit(self, train: AnnData) -> EmbeddingDecoder:
        data = check_training(train)
        table = self._embedding(data)
        report = table.attrs.get("worker")
        if report:  # computed here by the model's own code: say with what, and at what memory
            self.versions_, self.peak_memory_mib_ = report.get("versions"), peak_mib(report)
        usable = [c for c in data.conditions if c in table.index]
        self.dropped_ = {c: "no embedding for this condition" for c in data.conditions if c not in table.index}
        if len(usable) < 2:
            raise ValueError(
                f"Only {len(usable)} training conditions have an embedding; the decoder needs at least 2. "
                f"Embedded conditions look like {list(table.index[:3])}, training ones like {list(data.conditions[:3])}."
            )
        rows = data.conditions.get_indexer(usable)
        self.coef_, self.intercept_ = ridge_fit(table.loc[usable].to_numpy(), data.X[rows],
                                                ridge=float(self.ridge))
        self.embedding_ = table
        self._remember(data)
        return self

    def check_inputs(self) -> None:
        """The embedding file, the cells' file and, where given, the model's folder, files and code exist."""
        require_paths(embedding=self.embedding, cells=self.cells, **{key: getattr(self, key, None) for key in
                                                                       ("model", "code", "model_files")})

    @property
    def preset(self) -> str:
        """How the embedding was made: ``"paper"`` (the model's own code, the paper's protocol), ``"linpert"``
        (linpert's encoding, the pretrained model as it is) or ``""`` (the user's table)."""
        if getattr(self, "code", None) is not None:
            return "paper"
        return "linpert" if getattr(self, "model", None) is not None else ""

    def _embedding(self, data: Any) -> pd.DataFrame:
        """The per-condition table the ridge decodes: given by the user (a table, or ``obsm`` of the cells)."""
        return condition_embedding(self.embedding, cells=self.cells, obsm_key=self.obsm_key or self.default_obsm_key,
                                   condition_key=self.condition_key)

    def _predict(self, conditions: list[Condition]) -> tuple[np.ndarray, list[str]]:
        X = np.full((len(conditions), len(self.genes_)), np.nan)
        reasons = []
        for i, condition in enumerate(conditions):
            if condition.name in self.embedding_.index:
                X[i] = self.embedding_.loc[condition.name].to_numpy() @ self.coef_ + self.intercept_
                reasons.append("")
            else:
                reasons.append(f"no {self.name} embedding for {condition.name}")
        return X, reasons


class GeneformerDecoder(EmbeddingDecoder):
    """Geneformer's cell embedding (fine-tuned as a condition classifier, in-silico deletion / overexpression of the
    targets) averaged per condition, then a ridge decoder.

    With ``model`` (Geneformer's model folder) and ``code`` (its repository at a 0.1.0 commit), ``fit`` runs the
    paper's protocol in Geneformer's own code: the model fine-tuned on the training conditions' cells (``epochs``
    and ``training_args`` change its classifier's training), the targets perturbed in silico in
    ``n_control_cells`` control cells (``mode``: ``"overexpress"`` for CRISPRa screens such as Norman's,
    ``"delete"`` for CRISPRi and knock-outs), every condition of ``cells`` embedded
    (:func:`~linpert.adapters.geneformer_embedding`). With ``model`` alone, the pretrained model embeds linpert's
    encoding of the same inputs, without fine-tuning. Without either, it reads the user's embedding: ``embedding=``,
    or ``obsm['X_geneformer']`` of ``cells`` unless ``obsm_key`` says otherwise.
    """

    name = "geneformer"
    default_obsm_key = "X_geneformer"

    def __init__(
        self,
        *,
        model: str | os.PathLike | None = None,
        code: str | os.PathLike | None = None,
        mode: str = "overexpress",
        epochs: int | None = None,
        training_args: dict[str, Any] | None = None,
        n_control_cells: int | None = 100,
        batch_size: int = 32,
        embedding: Any = None,
        cells: Any = None,
        obsm_key: str | None = None,
        ridge: float = 1.0,
        condition_key: str = "condition",
        seed: int = 0,
        device: str = "auto",
        runtime: Any = "venv",
    ) -> None:
        super().__init__(embedding=embedding, cells=cells, obsm_key=obsm_key, ridge=ridge, condition_key=condition_key)
        self.model, self.code, self.mode, self.epochs, self.training_args = model, code, mode, epochs, training_args
        self.n_control_cells, self.batch_size = n_control_cells, batch_size
        self.seed, self.device, self.runtime = seed, device, runtime

    def _embedding(self, data: Any) -> pd.DataFrame:
        if self.model is None and self.code is None:
            return super()._embedding(data)
        if self.model is None or self.cells is None:
            raise ValueError("geneformer computes its embedding from model= (Geneformer's model folder) and cells= "
                             "(the cell-level data), with code= (its repository) for the paper's fine-tuning; "
                             "or give embedding= a per-condition table.")
        return geneformer_embedding(self.cells, self.model, code=self.code, mode=self.mode,
                                    train_conditions=list(data.conditions), epochs=self.epochs,
                                    training_args=self.training_args,
                                    n_control_cells=self.n_control_cells, batch_size=self.batch_size,
                                    condition_key=self.condition_key, seed=self.seed, device=self.device,
                                    runtime=self.runtime)


class UceDecoder(EmbeddingDecoder):
    """UCE's zero-shot embedding of control cells with the target genes' expression overwritten, averaged per
    condition, then a ridge decoder.

    With ``model_files`` (UCE's ``model_files`` folder), ``fit`` embeds every condition of ``cells`` from
    ``n_control_cells`` control cells with the ``uce-model`` package, as the paper did
    (:func:`~linpert.adapters.uce_embedding`; ``batch_size`` is UCE's default, 25: it changes speed and memory, not
    the embedding, which batches of 25 and 100 gave identically on a small screen). Without it, it reads the user's
    embedding: ``embedding=``, or ``obsm['X_uce']`` of ``cells`` unless ``obsm_key`` says otherwise.
    """

    name = "uce"
    default_obsm_key = "X_uce"

    def __init__(
        self,
        *,
        model_files: str | os.PathLike | None = None,
        n_control_cells: int | None = 100,
        batch_size: int = 25,
        embedding: Any = None,
        cells: Any = None,
        obsm_key: str | None = None,
        ridge: float = 1.0,
        condition_key: str = "condition",
        seed: int = 0,
        device: str = "auto",
        runtime: Any = "venv",
    ) -> None:
        super().__init__(embedding=embedding, cells=cells, obsm_key=obsm_key, ridge=ridge, condition_key=condition_key)
        self.model_files, self.n_control_cells, self.batch_size = model_files, n_control_cells, batch_size
        self.seed, self.device, self.runtime = seed, device, runtime

    @property
    def preset(self) -> str:
        return "paper" if self.model_files is not None else ""  # UCE zero-shot on the paper's inputs

    def _embedding(self, data: Any) -> pd.DataFrame:
        if self.model_files is None:
            return super()._embedding(data)
        if self.cells is None:
            raise ValueError("uce computes its embedding from model_files= (UCE's folder) and cells= (the cell-level "
                             "data); give cells=, or embedding= a per-condition table.")
        return uce_embedding(self.cells, self.model_files, n_control_cells=self.n_control_cells,
                             batch_size=self.batch_size, condition_key=self.condition_key, seed=self.seed,
                             device=self.device, runtime=self.runtime)


class ScBertDecoder(EmbeddingDecoder):
    """scBERT's embedding after fine-tuning on the training conditions, averaged per condition, then a ridge
    decoder.

    With ``model`` (scBERT's model folder) and ``code`` (its repository at the paper's commit 262fd4b9), ``fit``
    fine-tunes scBERT on the labels of the training conditions' cells and embeds every condition of ``cells``
    (:func:`~linpert.adapters.scbert_embedding`, with ``finetune.py``'s settings unless ``epochs``, ``batch_size``,
    ``grad_acc``, ``learning_rate`` say otherwise). Without them it reads the user's embedding: ``embedding=``, or
    ``obsm['X_scbert']`` of ``cells`` unless ``obsm_key`` says otherwise.
    """

    name = "scbert"
    default_obsm_key = "X_scbert"

    def __init__(
        self,
        *,
        model: str | os.PathLike | None = None,
        code: str | os.PathLike | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        grad_acc: int | None = None,
        learning_rate: float | None = None,
        n_control_cells: int | None = 100,
        embedding: Any = None,
        cells: Any = None,
        obsm_key: str | None = None,
        ridge: float = 1.0,
        condition_key: str = "condition",
        seed: int = 0,
        device: str = "auto",
        runtime: Any = "venv",
    ) -> None:
        super().__init__(embedding=embedding, cells=cells, obsm_key=obsm_key, ridge=ridge, condition_key=condition_key)
        self.model, self.code = model, code
        self.epochs, self.batch_size, self.grad_acc, self.learning_rate = epochs, batch_size, grad_acc, learning_rate
        self.n_control_cells, self.seed, self.device, self.runtime = n_control_cells, seed, device, runtime

    def _embedding(self, data: Any) -> pd.DataFrame:
        if self.model is None and self.code is None:
            return super()._embedding(data)
        if self.model is None or self.code is None or self.cells is None:
            raise ValueError("scbert computes its embedding from model= (scBERT's model folder), code= (its "
                             "repository at 262fd4b9) and cells= (the cell-level data); give all three, or "
                             "embedding= a per-condition table.")
        settings = {key: FINETUNE[key] if value is None else value for key, value in
                    (("epochs", self.epochs), ("batch_size", self.batch_size), ("grad_acc", self.grad_acc),
                     ("learning_rate", self.learning_rate))}
        return scbert_embedding(self.cells, self.model, code=self.code, train_conditions=list(data.conditions),
                                n_control_cells=self.n_control_cells, condition_key=self.condition_key,
                                seed=self.seed, device=self.device, runtime=self.runtime, **settings)
