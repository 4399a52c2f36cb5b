"""Perturbation embeddings from another dataset (the paper's "Replogle" P) and random ones."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .._conditions import parse_condition
from .._config import renamed

if TYPE_CHECKING:
    from anndata import AnnData


@renamed(reference_pseudobulk="pb")
def transfer_embedding(pb: AnnData, *, n_components: int = 10) -> pd.DataFrame:
    """PCA scores of another dataset's pseudobulk as a perturbation embedding (the paper's K562 ↔ RPE1 transfer).

    The conditions × genes matrix (every row: ``ctrl``, singles and any doubles) is centred per gene and its
    top ``n_components`` principal-component scores (``U·D``) are computed exactly (SVD). Each **single**
    perturbation's scores become the embedding of its target gene, and the reference control's scores the row
    ``ctrl``: the paper's ``extract_pert_embedding_pca.R`` keeps it, so its linear model embeds ``ctrl`` by it, not
    by zero. The rows of doubles shape the PCA but are not returned (a double is the sum of its genes). Each
    component's sign is fixed so that its largest-magnitude score is positive.

    Examples
    --------
    >>> import anndata as ad
    >>> X = np.array([[0.0, 0.0], [1.0, 0.5], [2.0, 1.1], [-1.0, -0.4]])
    >>> pb = ad.AnnData(X, obs=pd.DataFrame(index=["ctrl", "A+ctrl", "B+ctrl", "C+ctrl"]))
    >>> emb = transfer_embedding(pb, n_components=1)
    >>> list(emb.index), emb["dim1"].round(3).tolist()
    (['ctrl', 'A', 'B', 'C'], [-0.581, 0.537, 1.699, -1.655])
    """
    if not (hasattr(pb, "X") and hasattr(pb, "obs_names")):
        raise TypeError("pb must be a pseudobulk AnnData; build one with linpert.pseudobulk(adata).")
    X = pb.X
    X = np.array(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("pb has non-finite values; remove or impute them first.")
    k = n_components
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= min(X.shape):
        raise ValueError(
            f"n_components={k!r} must be an integer between 1 and min(conditions, genes) = {min(X.shape)}."
        )
    Xc = X - X.mean(axis=0)
    U, D, _ = np.linalg.svd(Xc, full_matrices=False)
    scores = U[:, :k] * D[:k]
    biggest = np.abs(scores).argmax(axis=0)
    signs = np.sign(scores[biggest, np.arange(k)])
    signs[signs == 0] = 1.0
    scores = scores * signs

    conditions = [parse_condition(str(name)) for name in pb.obs_names]
    single = [i for i, c in enumerate(conditions) if c.is_control or len(c.genes) == 1]
    targets = pd.Index([conditions[i].genes[0] if conditions[i].genes else conditions[i].name for i in single],
                       name="gene", dtype=object)
    if targets.has_duplicates:
        raise ValueError(f"Targets occur more than once: {sorted(set(targets[targets.duplicated()]))[:5]}.")
    return pd.DataFrame(scores[single], index=targets, columns=[f"dim{d + 1}" for d in range(k)])


def random_embedding(genes: Sequence[str], *, n_components: int = 10, seed: int) -> pd.DataFrame:
    """N(0, 1) embedding vectors, one per gene; a gene's vector depends only on ``seed`` and its name.

    A table to pass anywhere an embedding goes. The paper's random embeddings are another thing, R's ``rnorm`` in its
    script's order: ``LinearModel(gene_embedding="random")`` / ``perturbation_embedding="random"`` draw those.

    Examples
    --------
    >>> a = random_embedding(["A", "B"], n_components=3, seed=1)
    >>> b = random_embedding(["B"], n_components=3, seed=1)
    >>> bool(np.array_equal(a.loc["B"], b.loc["B"]))
    True
    """
    if isinstance(genes, str):
        raise TypeError(f"genes must be a list of gene symbols, got the string {genes!r}.")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}.")
    index = pd.Index([str(g) for g in genes], name="gene", dtype=object)
    if index.has_duplicates:
        raise ValueError(f"genes occur more than once: {sorted(set(index[index.duplicated()]))[:5]}.")
    values = np.empty((len(index), int(n_components)))
    for i, gene in enumerate(index):
        values[i] = np.random.default_rng([int(seed), zlib.crc32(gene.encode())]).standard_normal(int(n_components))
    return pd.DataFrame(values, index=index, columns=[f"dim{d + 1}" for d in range(int(n_components))])
