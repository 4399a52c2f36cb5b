"""Converters between the linpert R package and the linpert Python package.

R calls these through reticulate, which Debian 12 ships as 1.28: it cannot convert NumPy 2 arrays, so nothing here
depends on its NumPy conversion. Large numbers never cross as R objects: Python reads R's vectors where they lie and
fills vectors that R allocated (:mod:`linpert_rmemory`), or, where that is unavailable, they cross as raw
little-endian buffers (R ``raw`` <-> Python ``bytearray``). Strings cross as their distinct values and int32 codes,
small values as lists and strings.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

import linpert_rmemory as rmemory


def cells_by_genes(
    data: bytearray,
    n_cells: int,
    n_genes: int,
    *,
    indices: bytearray | None = None,
    indptr: bytearray | None = None,
) -> Any:
    """Rebuild an R genes × cells matrix as a cells × genes matrix, without copying the values.

    R stores a dense matrix column by column, so the genes × cells matrix read row by row is cells × genes; a
    ``dgCMatrix`` (compressed columns) of genes × cells is, slot for slot, a CSR matrix of cells × genes.

    Parameters
    ----------
    data
        The values (``writeBin(as.double(x), raw(), endian = "little")``), or the ``x`` slot of a dgCMatrix.
    n_cells, n_genes
        The shape of the result.
    indices, indptr
        The ``i`` and ``p`` slots of a dgCMatrix as little-endian int32 buffers; ``None`` for a dense matrix.

    Examples
    --------
    >>> values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).tobytes()  # R: matrix(1:6, nrow = 2), genes x cells
    >>> cells_by_genes(bytearray(values), 3, 2)
    array([[1., 2.],
           [3., 4.],
           [5., 6.]])
    """
    n_cells, n_genes = int(n_cells), int(n_genes)
    values = np.frombuffer(data, dtype="<f8")
    if indices is None:
        return values.reshape(n_cells, n_genes)
    from scipy import sparse

    return sparse.csr_matrix(
        (values, np.frombuffer(indices, dtype="<i4"), np.frombuffer(indptr, dtype="<i4")),
        shape=(n_cells, n_genes),
    )


def cells_by_genes_shared(holder: Any, n_cells: int, n_genes: int) -> Any:
    """As :func:`cells_by_genes`, on R's own vectors ``x`` (and ``i``, ``p`` of a dgCMatrix) in ``holder``, read
    where they lie (:mod:`linpert_rmemory`): nothing is copied."""
    n_cells, n_genes = int(n_cells), int(n_genes)
    values = rmemory.view(holder, "x")
    try:
        indices = rmemory.view(holder, "i")
    except KeyError:
        return values.reshape(n_cells, n_genes)
    from scipy import sparse

    return sparse.csr_matrix((values, indices, rmemory.view(holder, "p")), shape=(n_cells, n_genes), copy=False)


def memory_shared(holder: Any) -> bool:
    """Whether R's vectors can be read in place here (:func:`linpert_rmemory.available`)."""
    return rmemory.available(holder)


def pseudobulk(
    matrix: Any,
    conditions: str | Sequence[str],
    var_names: str | Sequence[str],
    *,
    gene_names: str | Sequence[str] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an AnnData from R's pieces, run :func:`linpert.pseudobulk` and return the result for R.

    ``gene_names``, when given, are the symbols (rowData ``gene_name``); ``var_names`` are then kept as
    ``var['gene_id']``. ``options`` are passed on to :func:`linpert.pseudobulk` as keywords.
    """
    import anndata as ad
    import pandas as pd

    import linpert

    codes = _categorical(conditions)
    obs = pd.DataFrame({"condition": codes}, index=_cell_names(len(codes)))
    var = pd.DataFrame(index=pd.Index(_strings(var_names)))
    gene_key = None
    if gene_names is not None:
        var["gene_name"] = _strings(gene_names)
        gene_key = "gene_name"
    adata = ad.AnnData(X=matrix, obs=obs, var=var)
    result = linpert.pseudobulk(adata, condition_key="condition", gene_key=gene_key, **(options or {}))
    return to_r(result)


_CELL_NAMES: Any = ()  # see _cell_names()


def _cell_names(n: int) -> Any:
    """Cell names "0", "1", ... for the AnnData built from R's cells: pseudobulk never reads them, but AnnData wants
    strings, and making 30,000 takes 4 ms; made once, then sliced."""
    import pandas as pd

    global _CELL_NAMES
    if len(_CELL_NAMES) < n:
        _CELL_NAMES = pd.RangeIndex(max(n, 2 * len(_CELL_NAMES))).astype(str)
    return _CELL_NAMES[:n]


def to_r(pb: Any) -> dict[str, Any]:
    """Flatten a pseudobulk AnnData into an outbox matrix (:func:`matrix_to_r`: conditions × genes, which R takes as
    genes × conditions), lists and plain values that reticulate converts to R."""
    var = pb.var
    return {
        "x": matrix_to_r(np.asarray(_dense(pb.X), dtype=np.float64)),
        "n_obs": int(pb.n_obs),
        "n_vars": int(pb.n_vars),
        "obs_names": [str(n) for n in pb.obs_names],
        "var_names": [str(n) for n in pb.var_names],
        "genes": [str(g) for g in pb.obs["genes"]],
        "kind": [str(k) for k in pb.obs["kind"]],
        "n_cells": [int(n) for n in pb.obs["n_cells"]],
        "gene_id": [str(g) for g in var["gene_id"]] if "gene_id" in var.columns else None,
        "provenance": json.loads(json.dumps(pb.uns.get("linpert", {}), default=_plain)),
    }


def _strings(values: str | Sequence[str] | dict) -> list[str]:
    # reticulate passes a length-one character vector as a plain str; long vectors come coded (R's .coded())
    if isinstance(values, dict):
        return [str(v) for v in _decoded(values)]
    return [values] if isinstance(values, str) else [str(v) for v in values]


def _dense(x: Any) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def _plain(value: Any) -> Any:
    # NumPy scalars and arrays in uns -> Python values that json (and then reticulate) understands
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------------------------------------------------------
# Inside an R process, Python must never start a second R through rpy2 (R -> Python -> R): linpert's "auto" backends
# (locfdr, go_embedding) ask linpert._r whether R is usable, so the bridge tells them it is not. The R package calls
# R's locfdr and igraph itself, natively, on the numbers Python returns.
def _no_r(package: str | None = None) -> bool:
    return False


def _forbid_rpy2() -> None:
    from linpert import _r

    _r.r_available = _no_r


_forbid_rpy2()


# ------------------------------------------------------------------------------------------- generic transport
def numbers(data: bytearray | bytes) -> np.ndarray:
    """A little-endian float64 buffer from R (``writeBin(as.double(x), raw(), endian = "little")``) as an array."""
    return np.frombuffer(bytes(data), dtype="<f8")


def _buffer(values: Any) -> bytearray:
    return bytearray(np.ascontiguousarray(np.asarray(values, dtype="<f8")).tobytes())


# Matrices on their way to R: R takes each (take()) into vectors it allocates, filled once from these arrays.
_OUTBOX: dict[int, dict[str, np.ndarray]] = {}
_KEYS = itertools.count(1)  # small numbers: R takes Python's integers as 32-bit ones


def matrix_to_r(x: Any) -> dict[str, Any]:
    """A 2-D matrix for R: dense as row-major values (R reads them column by column, i.e. transposed); a scipy sparse
    matrix as CSR slots, which R takes as the dgCMatrix of the transpose. The numbers wait in the outbox until R's
    ``.matrix_from_python()`` takes them with :func:`take`."""
    if hasattr(x, "tocsr"):
        csr = x.tocsr()
        csr.sort_indices()
        parts = {"x": csr.data, "i": csr.indices, "p": csr.indptr}
        shape = csr.shape
    else:
        dense = np.ascontiguousarray(x)
        parts, shape = {"x": dense}, dense.shape
    key = next(_KEYS)
    _OUTBOX[key] = parts
    return {"sparse": "i" in parts, "outbox": key, "nrow": int(shape[0]), "ncol": int(shape[1])}


def take(key: int, holder: Any = None) -> dict[str, Any] | None:
    """Hand a matrix of the outbox to R: its vectors put into ``holder`` (None), or, without one (R's memory
    cannot be shared here), as raw buffers (``x``, ``i``, ``p``)."""
    parts = _OUTBOX.pop(int(key))
    if holder is not None:  # R sends one only where memory_shared() said yes
        for name, values in parts.items():
            rmemory.put(holder, name, values, double=name == "x")
        return None
    return {name: _buffer(v) if name == "x" else bytearray(np.asarray(v, dtype="<i4").tobytes())
            for name, v in parts.items()}


def frame_to_r(df: Any, *, index: bool = False) -> dict[str, Any]:
    """A pandas DataFrame for R: numbers as float64 buffers, integers and logicals as lists, the rest as strings.

    ``types`` tells R how to rebuild each column (``double``, ``integer``, ``logical``, ``character``); NaN/None in a
    string column become R's NA.
    """
    import pandas as pd

    columns, types = {}, {}
    for name in df.columns:
        col = df[name]
        key = str(name)
        if pd.api.types.is_bool_dtype(col) and not col.isna().any():
            columns[key], types[key] = bytearray(col.to_numpy().astype("<i4").tobytes()), "logical"
        elif (pd.api.types.is_integer_dtype(col) and not col.isna().any()
              and (len(col) == 0 or np.abs(col.to_numpy(dtype=np.int64)).max() < 2**31)):
            columns[key], types[key] = bytearray(col.to_numpy().astype("<i4").tobytes()), "integer"
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            columns[key], types[key] = _buffer(col.to_numpy(dtype=np.float64, na_value=np.nan)), "double"
        else:
            columns[key], types[key] = _coded(col), "character"
    return {
        "names": [str(c) for c in df.columns],
        "columns": columns,
        "types": types,
        "nrow": int(len(df)),
        "row_names": [str(i) for i in df.index] if index else None,
    }


def _coded(values: Any) -> dict[str, Any]:
    """Strings for R as their distinct values and one int32 code per row (-1: NA): one crossing of each distinct
    string instead of one per row."""
    import pandas as pd

    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):  # the codes are there already
        codes, levels = np.asarray(values.cat.codes), values.cat.categories
    else:
        codes, levels = pd.factorize(np.asarray(values, dtype=object))  # None and NaN get -1
    return {"levels": [_text(v) for v in levels], "codes": bytearray(codes.astype("<i4").tobytes())}


def _categorical(values: Any) -> Any:
    """R's coded strings as a pandas Categorical, straight from the codes (no string per row); a list as given."""
    import pandas as pd

    if isinstance(values, dict) and "levels" in values:
        return pd.Categorical.from_codes(np.frombuffer(bytes(values["codes"]), dtype="<i4"),
                                         categories=_listed(values["levels"]))
    return _strings(values)


def _decoded(values: dict[str, Any]) -> list:
    """R's strings (``.coded()`` in R: distinct values and 0-based codes, -1 for NA) as a list."""
    levels = np.asarray(_listed(values["levels"]) + [None], dtype=object)
    return list(levels[np.frombuffer(bytes(values["codes"]), dtype="<i4")])


def frame_from_r(columns: dict[str, Any], types: dict[str, str], names: Sequence[str], row_names=None) -> Any:
    """Rebuild a DataFrame that R sent as ``.frame_to_python()`` does (double columns as buffers)."""
    import pandas as pd

    data = {}
    for name in _strings(names):
        kind, values = types[name], columns[name]
        if kind == "double":
            data[name] = numbers(values).copy()
        elif kind in ("integer", "logical"):  # int32 buffers (R's .raw_int())
            data[name] = np.frombuffer(bytes(values), dtype="<i4").astype(np.int64 if kind == "integer" else bool)
        else:
            data[name] = _decoded(values)
    df = pd.DataFrame(data)
    if row_names is not None:
        df.index = pd.Index(_strings(row_names))
    return df


def _ints(values: bytearray | Sequence[int]) -> list[int]:
    """R's integers: an int32 buffer (``.raw_int()``) or a list."""
    if isinstance(values, (bytes, bytearray)):
        return np.frombuffer(bytes(values), dtype="<i4").astype(np.int64).tolist()
    return [int(v) for v in _listed(values)]


def _listed(values: Any) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _text(value: Any) -> str:
    return "+".join(value) if isinstance(value, tuple) else str(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_plain))


# ------------------------------------------------------------------------------------------ pseudobulk from R
def pseudobulk_from_r(
    x: bytearray,
    obs_names: str | Sequence[str],
    var_names: str | Sequence[str],
    *,
    n_cells: bytearray | Sequence[int] | None = None,
    gene_id: dict | Sequence[str] | None = None,
    provenance: str = "{}",
) -> Any:
    """R's genes × conditions matrix as the pseudobulk AnnData (:func:`linpert.as_pseudobulk`); ``n_cells`` an
    int32 buffer (R's ``.raw_int()``), ``gene_id`` coded strings (R's ``.coded()``)."""
    from linpert import as_pseudobulk

    obs_names, var_names = _strings(obs_names), _strings(var_names)
    # a buffer, or R's own vector (copied: models may write to what they are given, and R's memory is read-only)
    values = numbers(x) if isinstance(x, (bytes, bytearray)) else rmemory.view(x, "x").copy()
    X = values.reshape(len(obs_names), len(var_names))
    return as_pseudobulk(X, obs_names, var_names, n_cells=None if n_cells is None else _ints(n_cells),
                         gene_ids=None if gene_id is None else _strings(gene_id), provenance=json.loads(provenance))


# ------------------------------------------------------------------------------------ cell-level data for R
def anndata_to_r(adata: Any) -> dict[str, Any]:
    """Everything an SCE needs from an AnnData: X and the layers (sparse stays sparse), obs, var, and the JSON-able
    part of uns (the rest is named in ``uns_dropped``)."""
    X = adata.X
    if X is None:
        raise ValueError("The AnnData has no X; put the log-normalised expression in X.")
    if hasattr(adata, "isbacked") and adata.isbacked:
        adata = adata.to_memory()
        X = adata.X
    uns, dropped = {}, []
    for key, value in adata.uns.items():
        try:
            uns[str(key)] = json.loads(json.dumps(value, default=_strict_plain))
        except (TypeError, ValueError):
            dropped.append(str(key))
    return {
        "assays": {"X": matrix_to_r(X), **{str(k): matrix_to_r(v) for k, v in adata.layers.items()}},
        "obs": frame_to_r(adata.obs),
        "var": frame_to_r(adata.var),
        "obs_names": [str(n) for n in adata.obs_names],
        "var_names": [str(n) for n in adata.var_names],
        "uns": uns,
        "uns_dropped": dropped,
    }


def _strict_plain(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(type(value).__name__)


def anndata_from_r(assays: dict[str, Any], obs: dict[str, Any], var: dict[str, Any], uns: str = "{}") -> Any:
    """An AnnData (cells × genes) from R's SCE pieces; assay ``X`` (else the first) becomes ``X``, the rest layers."""
    import anndata as ad

    matrices = {}
    for name, m in assays.items():
        n_cells, n_genes = int(m["n_cells"]), int(m["n_genes"])
        if m.get("indices") is not None:
            matrices[name] = cells_by_genes(m["x"], n_cells, n_genes, indices=m["indices"], indptr=m["indptr"]).copy()
        else:
            matrices[name] = cells_by_genes(m["x"], n_cells, n_genes).copy()
    first = "X" if "X" in matrices else next(iter(matrices))
    obs_df = frame_from_r(**obs)
    var_df = frame_from_r(**var)
    return ad.AnnData(
        X=matrices.pop(first), obs=obs_df, var=var_df, layers=matrices, uns=json.loads(uns)
    )


def simulate(preset: str, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`linpert.datasets.simulate` for R: the cells, plus the truth's tables and expected pseudobulk."""
    import pandas as pd

    import linpert

    adata = linpert.datasets.simulate(preset, **{k: _whole(v) for k, v in (options or {}).items()})
    truth = adata.uns.pop("linpert_truth")
    out = anndata_to_r(adata)
    expected = pd.DataFrame(truth["expected"], index=[str(c) for c in truth["conditions"]])
    out["truth"] = {
        "interactions": frame_to_r(truth["interactions"]),
        "perturbations": frame_to_r(truth["perturbations"].reset_index()),
        "expected": matrix_to_r(expected.to_numpy()),
        "conditions": list(expected.index),
        "params": _jsonable(truth["params"]),
    }
    return out


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def load_dataset(name: str, level: str, cache_dir: str | None, download: bool) -> dict[str, Any]:
    """A published dataset from the cache (downloaded first when ``download``), for R."""
    import linpert

    if not download and not dataset_cached(name, cache_dir):
        where = linpert.datasets.data_dir(cache_dir)
        raise FileNotFoundError(
            f"The dataset {name!r} is not in the cache ({where}). Call load_dataset({name!r}, download = TRUE) once, "
            "or set LINPERT_DATA_DIR to the folder that holds it."
        )
    data = linpert.datasets.load(name, level=level, cache_dir=cache_dir, progress=False, backed=False)
    return to_r(data) if level == "pseudobulk" else anndata_to_r(data)


def dataset_cached(name: str, cache_dir: str | None = None) -> bool:
    import linpert

    table = linpert.datasets.list_resources(cache_dir=cache_dir)
    if name not in table.index:
        raise ValueError(f"Unknown dataset {name!r}. Known: {', '.join(map(str, table.index))}.")
    return bool(table.loc[name, "cached"])


def read_gears(path: str, gears_filter: bool = True, go_files: str | None = None) -> dict[str, Any]:
    import linpert

    cells = linpert.datasets.read_gears(path, backed=False, gears_filter=gears_filter, go_files=go_files)
    return anndata_to_r(cells)


def write_figures(folder: str, formats: Sequence[str]) -> list[str]:
    """:func:`linpert.plot.write_figures` for R: the paths written."""
    from linpert.plot import write_figures as write

    return [str(path) for path in write(folder, formats=tuple(_strings(formats)))]


# ------------------------------------------------------------------------------------------------------ splits
def split_to_r(split: Any) -> dict[str, Any]:
    return {
        "kind": split.kind,
        "seed": int(split.seed),
        "train": list(split.train),
        "val": list(split.val),
        "test": list(split.test),
        "subgroups": {k: list(v) for k, v in split.subgroups.items()},
        "params": _jsonable(split.params),
        "hash": split.hash,
    }


def _split_from_r(split: dict[str, Any]) -> Any:
    from linpert.splits import Split

    return Split(
        kind=str(split["kind"]),
        seed=int(split["seed"]),
        train=tuple(_strings(split["train"] or [])),
        val=tuple(_strings(split["val"] or [])),
        test=tuple(_strings(split["test"] or [])),
        subgroups={str(k): tuple(_strings(v or [])) for k, v in (split.get("subgroups") or {}).items()},
        params=dict(split.get("params") or {}),
    )


def make_split(kind: str, conditions: str | Sequence[str], seed: int, params: dict[str, Any]) -> dict[str, Any]:
    from linpert.splits import make_split as _make

    return split_to_r(_make(kind, _strings(conditions), seed=int(seed), **(params or {})))


def write_split(split: dict[str, Any], path: str) -> str:
    return str(_split_from_r(split).to_json(path))


def read_split(path: str) -> dict[str, Any]:
    from linpert.splits import Split

    return split_to_r(Split.from_json(path))


# ------------------------------------------------------------------------------------------------------ models
def _embedding_option(value: Any) -> Any:
    # an R data frame arrives as the dict of .frame_to_python(); a string is a spec ("pca", "random", "go", ...)
    if isinstance(value, dict) and "columns" in value:
        return frame_from_r(**value)
    return value


def make_model(name: str, params: dict[str, Any]) -> Any:
    from linpert.models import make_model as _make

    params = {k: _embedding_option(_whole(v)) for k, v in (params or {}).items()}
    return _make(name, **params)


def custom_model(label: str, fit: Any, predict: Any) -> Any:
    """R's ``custom_model()`` as a :class:`linpert.models.FunctionModel`: ``fit`` receives the training pseudobulk
    as :func:`to_r` gives it (R keeps the state), ``predict(conditions)`` returns a raw buffer, genes × conditions."""
    from linpert.models import FunctionModel

    def predict_buffer(_state: Any, names: list[str]) -> np.ndarray:
        return numbers(predict(names)).reshape(len(names), -1)

    return FunctionModel(fit=lambda train: fit(to_r(train)), predict=predict_buffer, name=str(label))


def fit_model(model: Any, pb: Any) -> Any:
    return model.fit(pb)


def predict_model(model: Any, conditions: str | Sequence[str]) -> dict[str, Any]:
    pred = model.predict(_strings(conditions))
    return {
        "x": _buffer(np.asarray(pred.X, dtype=np.float64)),
        "obs_names": [str(n) for n in pred.obs_names],
        "var_names": [str(n) for n in pred.var_names],
        "reason": [str(r) for r in pred.obs["reason"].fillna("")],
    }


def model_repr(model: Any) -> str:
    return repr(model)


# ----------------------------------------------------------------------------------------------------- metrics
def score(pred: bytearray, obs: bytearray, ctrl: bytearray, n_rows: int, n_genes: int) -> dict[str, Any]:
    from linpert.metrics import score as _score

    shape = (int(n_rows), int(n_genes))
    return frame_to_r(_score(numbers(pred).reshape(shape), numbers(obs).reshape(shape), numbers(ctrl)))


def forest_table(results: dict[str, Any], reference: str, n_boot: int, seed: int, ci: float) -> dict[str, Any]:
    from linpert.metrics import forest_table as _forest

    table = frame_from_r(**results)
    return frame_to_r(_forest(table, reference=reference, n_boot=int(n_boot), seed=int(seed), ci=float(ci)))


# ------------------------------------------------------------------------------------------------- benchmark
def run_benchmark(
    pb: Any,
    split: str,
    seeds: Sequence[int],
    models: Sequence[Any],
    out: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """:func:`linpert.benchmark.run` for R: every table of the result as an R data frame."""
    from linpert.benchmark import run

    labelled = []
    for item in models:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            labelled.append((str(item[0]), item[1]))
        else:
            labelled.append(item)
    options = {k: _whole(v) for k, v in (options or {}).items()}
    res = run(pb, split=split, seeds=[int(s) for s in _listed(seeds)], models=labelled, out=out, **options)
    tables = {"results": res.results, "timings": res.timings, "summary": res.summary, "scorecard": res.scorecard}
    if res.interactions is not None:
        ev = res.interactions
        tables.update(tpr_fdp=ev.tpr_fdp, curves=ev.curves, auc=ev.auc, auc_summary=ev.auc_summary)
    calls = res.interaction_calls
    return {
        "tables": {k: frame_to_r(v) for k, v in tables.items()},
        "more": run_result(res),
        "interactions": None if calls is None else _calls_to_r(calls, backend="python"),
        "out": None if res.out is None else str(res.out),
    }


def scorecard(columns: dict[str, Any], types: dict[str, str], names: Sequence[str]) -> dict[str, Any]:
    from linpert.metrics import scorecard as _scorecard

    return frame_to_r(_scorecard(frame_from_r(columns, types, names)))


def _calls_to_r(calls: Any, backend: str) -> dict[str, Any]:
    return {
        "table": frame_to_r(calls.table),
        "lower": float(calls.lower),
        "upper": float(calls.upper),
        "counts": {str(k): int(v) for k, v in calls.counts.items()},
        "backend": backend,
    }


# ---------------------------------------------------------------------------------------------- interactions
def additive_deviation(pb: Any, n_genes: int) -> dict[str, Any]:
    from linpert.interactions import additive_deviation as _deviation

    table = _deviation(pb, n_genes=int(n_genes))
    return {"table": frame_to_r(table), "missing_singles": _missing_singles(table)}


def _missing_singles(table: Any) -> dict[str, list[str]]:
    """The doubles :func:`~linpert.interactions.additive_deviation` left out, with their unmeasured singles."""
    return {k: list(v) for k, v in table.attrs.get("missing_singles", {}).items()}


# Deviation tables R is fitting a null to: kept here, so that only their deviations cross to R and back.
_DEVIATIONS: dict[int, Any] = {}


def deviations(pb: Any, n_genes: int, send: bool = True) -> dict[str, Any]:
    """:func:`additive_deviation` kept on this side, under a key; R gets the deviations to fit its null to
    (``send``), or nothing more where Python fits it (:func:`python_calls`)."""
    from linpert.interactions import additive_deviation as _deviation

    table = _deviation(pb, n_genes=int(n_genes))
    if not np.isfinite(table["deviation"].to_numpy()).all():
        raise ValueError("Some deviations are NA or infinite; check the pseudobulk for NA expression.")
    key = next(_KEYS)
    _DEVIATIONS[key] = table
    return {"key": key, "z": _buffer(table["deviation"]) if send else None, "n": len(table),
            "missing_singles": _missing_singles(table)}


def python_calls(key: int, options: dict[str, Any], level: float, rule: str) -> dict[str, Any]:
    """The calls of :func:`deviations`' table with the null fitted here by the port of locfdr: nothing crosses to
    R and back but the result."""
    from linpert.interactions import locfdr

    z = _DEVIATIONS[int(key)]["deviation"].to_numpy()
    fit = locfdr(z, backend="python", **{k: _whole(v) for k, v in (options or {}).items()})
    calls = interaction_calls.__wrapped__(key, fit.fdr, fit.center, level, rule)
    mlest = fit.fp0.loc["mlest"]
    calls["null"] = {"delta": float(mlest["delta"]), "sigma": float(mlest["sigma"]), "p0": float(mlest["p0"])}
    return calls


def forget(key: int) -> None:
    _DEVIATIONS.pop(int(key), None)


def interaction_calls(key: int, fdr: bytearray, center: float, level: float, rule: str) -> dict[str, Any]:
    """Thresholds and classes of the deviations of :func:`deviations` from an fdr computed in R (or by the port, in
    :func:`python_calls`): :func:`linpert.interactions.classify_deviations`, the step
    :func:`~linpert.interactions.call_interactions` takes."""
    from linpert.interactions import classify_deviations

    table = _DEVIATIONS.pop(int(key))
    fdr = numbers(fdr).copy() if isinstance(fdr, (bytes, bytearray)) else np.asarray(fdr)
    fit = SimpleNamespace(fdr=fdr, center=float(center))  # all classify_deviations reads of a fit
    df, lower, upper, counts = classify_deviations(table, fit, level=float(level), rule=rule)
    return {"table": frame_to_r(df), "lower": lower, "upper": upper,
            "counts": {str(k): int(v) for k, v in counts.items()}}


# ------------------------------------------------------------------------------------------------- embeddings
def go_embedding_python(edges: dict[str, Any], n_components: int, which: str, scaled: bool) -> dict[str, Any]:
    from linpert.embeddings import go_embedding

    emb = go_embedding(frame_from_r(**edges), n_components=int(n_components), which=which, scaled=bool(scaled),
                       backend="python")
    return {"embedding": frame_to_r(emb, index=True), "eigenvalues": [float(v) for v in emb.attrs["eigenvalues"]]}


def normalize_signs(x: bytearray, n_rows: int, n_cols: int) -> bytearray:
    from linpert.embeddings import normalize_signs as _normalize

    return _buffer(_normalize(numbers(x).reshape(int(n_rows), int(n_cols))))


def random_embedding(genes: str | Sequence[str], n_components: int, seed: int) -> dict[str, Any]:
    from linpert.embeddings import random_embedding as _random

    return frame_to_r(_random(_strings(genes), n_components=int(n_components), seed=int(seed)), index=True)


def transfer_embedding(pb: Any, n_components: int) -> dict[str, Any]:
    from linpert.embeddings import transfer_embedding as _transfer

    return frame_to_r(_transfer(pb, n_components=int(n_components)), index=True)


def published_results(dataset: str | None = None) -> dict[str, Any]:
    from linpert import published

    return frame_to_r(published.results(dataset))


# --------------------------------------------------------------------------------- metrics and evaluation
def _conditions_by_genes(x: bytearray, conditions: Sequence[str], genes: Sequence[str]) -> Any:
    """R's genes × conditions matrix (column-major buffer) as a conditions × genes DataFrame."""
    import pandas as pd

    conditions, genes = _strings(conditions), _strings(genes)
    return pd.DataFrame(numbers(x).reshape(len(conditions), len(genes)), index=conditions, columns=genes)


def score_metrics(predicted: bytearray, observed: bytearray, control: bytearray, reference: bytearray,
                  conditions: Sequence[str], genes: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """The paper's metrics and the named registered ones of one prediction (:func:`linpert.metrics` registry)."""
    from linpert.metrics._registry import Scoring, score_all

    scoring = Scoring(predicted=_conditions_by_genes(predicted, conditions, genes),
                      observed=_conditions_by_genes(observed, conditions, genes),
                      control=numbers(control).copy(), reference=numbers(reference).copy())
    table = score_all(scoring, [str(n) for n in _listed(names or [])])
    return frame_to_r(table.rename_axis("perturbation").reset_index())


def metric_table() -> dict[str, Any]:
    """Every registered metric (:data:`linpert.metrics.METRICS`) as a table."""
    import pandas as pd

    from linpert.metrics import METRICS

    return frame_to_r(pd.DataFrame(
        [{"name": m.name, "higher_is_better": bool(m.higher_is_better), "description": m.description,
          "needs_cells": bool(m.needs_cells)} for m in METRICS.values()],
        columns=["name", "higher_is_better", "description", "needs_cells"]))


def register_r_metric(name: str, callback: Any, higher_is_better: bool, description: str, replace: bool) -> str:
    """A metric written in R: ``callback`` gets the scoring's numbers as buffers and returns one value per row."""
    from linpert.metrics import register_metric

    def metric(scoring: Any) -> np.ndarray:
        rows, genes = list(scoring.observed.index), list(scoring.observed.columns)
        values = callback(_buffer(scoring.predicted.to_numpy()), _buffer(scoring.observed.to_numpy()),
                          _buffer(scoring.control), _buffer(scoring.reference), rows, genes)
        return numbers(values).copy()

    register_metric(str(name), metric, higher_is_better=bool(higher_is_better), description=str(description),
                    replace=bool(replace))
    return str(name)


def evaluate_interactions(table: dict[str, Any], lower: float, upper: float, predictions: Sequence[Any],
                          top_k: int, recurrence_k: int) -> Any:
    """:func:`linpert.interactions.evaluate_interactions` of R's calls and R's predictions, each prediction
    ``[seed, model, buffer, conditions, genes]`` (genes × conditions, column-major)."""
    from linpert.interactions import InteractionCalls, evaluate_interactions as _evaluate

    calls_table = frame_from_r(**table)
    counts = calls_table["class"].value_counts()
    calls = InteractionCalls(table=calls_table, lower=float(lower), upper=float(upper), locfdr=None, counts=counts)
    mapping = {(int(seed), str(model)): _conditions_by_genes(x, conditions, genes)
               for seed, model, x, conditions, genes in predictions}
    return _to_r_value(_evaluate(calls, mapping, top_k=int(top_k), recurrence_k=int(recurrence_k)))


def run_data(folder: str, name: str, options: dict[str, Any] | None = None) -> Any:
    """One table of a run folder as :class:`linpert.plot.RunFolder` reads it: an attribute (``results``,
    ``pairs``, ...), ``interactions/<table>``, or ``paired`` (one seed and model's prediction, observation and
    control: ``options`` name them)."""
    from linpert.plot import RunFolder

    run = RunFolder(folder)
    if name.startswith("interactions/"):
        return _to_r_value(run.interaction_table(name.split("/", 1)[1]))
    if name == "paired":
        found = run.paired(int(options["seed"]), str(options["model"]))
        if found is None:
            raise ValueError(f"{folder} holds no predictions of model {options['model']!r} on split seed "
                             f"{options['seed']}.")
        predicted, observed, control = found
        return _to_r_value({"predicted": predicted, "observed": observed, "control": control})
    if name == "reference_control":
        return _to_r_value(run.reference_control(str(options["model"])))
    return _to_r_value(getattr(run, name))


def run_result(res: Any) -> Any:
    """Every part of a :class:`~linpert.benchmark.BenchmarkResult` that R's run_benchmark() returns beyond the
    tables: the forest, calibrated scores, published rows, fidelity, failures, the interaction note."""
    import pandas as pd

    failures = [{"seed": int(seed), "model": str(model), "reason": str(reason)}
                for (seed, model), reason in (res.failures or {}).items()]

    return _to_r_value({
        "forest": res.forest, "calibrated": res.calibrated, "published": res.published, "fidelity": res.fidelity,
        "failures": pd.DataFrame(failures, columns=["seed", "model", "reason"]),
        "interaction_note": res.interaction_note, "restriction": dict(res.restriction or {}),
        "reused": int(res.reused),
    })


# --- any public function: its arguments from R, its result for R ------------------------------------------
# R tags what is not a plain value: {"__linpert__": "frame", ...} is a data frame as .frame_to_python() sends it.
# The result is sent back tagged the same way (frames, numeric vectors, matrices, AnnData, records).
def call(path: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, encode: bool = True) -> Any:
    """``linpert.<path>(*args, **kwargs)`` with R's tagged arguments decoded, its result encoded for R; a path
    that names a value (a constant, ``published.TABLES``) gives the value."""
    import importlib

    target: Any = importlib.import_module("linpert")
    for part in path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            target = importlib.import_module(f"{target.__name__}.{part}")
    if callable(target):
        decoded = {str(k): _from_r_value(v) for k, v in (kwargs or {}).items()}
        target = target(*[_from_r_value(a) for a in _listed(args or [])], **decoded)
    return _to_r_value(target) if encode else target


def call_raw(path: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> Any:
    """As :func:`call`, the result left a Python object (an AnnData that R's ``as_sce()`` converts)."""
    return call.__wrapped__(path, args, kwargs, encode=False)


def _from_r_value(value: Any) -> Any:
    if isinstance(value, dict):
        tag = value.get("__linpert__")
        if tag == "frame":
            return frame_from_r(value["columns"], value["types"], value["names"], value.get("row_names"))
        if tag == "series":
            frame = frame_from_r(value["columns"], value["types"], value["names"], value.get("row_names"))
            return frame.iloc[:, 0]
        if tag == "strings":  # R's character vector (one string arrives as a str)
            return _listed(value["x"])
        if tag == "doubles":
            return numbers(value["x"]).copy()
        if tag == "array2d":
            return numbers(value["x"]).reshape(int(value["nrow"]), int(value["ncol"])).copy()
        return {str(k): _from_r_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_r_value(v) for v in value]
    return _whole(value)


def _to_r_value(value: Any) -> Any:
    """A Python result as R rebuilds it (``.from_python_value()`` in R): tagged frames, vectors and matrices."""
    import dataclasses
    from pathlib import PurePath

    import pandas as pd

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, pd.DataFrame):
        named = not isinstance(value.index, pd.RangeIndex)
        return {"__linpert__": "frame", **frame_to_r(value, index=named)}
    if isinstance(value, pd.Series):
        return {"__linpert__": "series", "name": None if value.name is None else str(value.name),
                **frame_to_r(value.to_frame("value"), index=True)}
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "fiub":
        return {"__linpert__": "doubles", "x": _buffer(value)}
    if isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype.kind in "fiub":
        return {"__linpert__": "matrix", **matrix_to_r(value)}
    if hasattr(value, "obs_names") and hasattr(value, "var_names"):
        return {"__linpert__": "anndata", **anndata_to_r(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _to_r_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__linpert__": "record", "class": type(value).__name__, "fields": fields}
    if isinstance(value, dict):
        return {"__linpert__": "dict", "keys": [_text(k) for k in value],
                "values": [_to_r_value(v) for v in value.values()]}
    if isinstance(value, (list, tuple)):
        return [_to_r_value(v) for v in value]
    return repr(value)


# --- warnings: Python's warnings reach R as R warnings ------------------------------------------------------
_WARNINGS: list[str] = []


def take_warnings() -> list[str]:
    """The messages of the warnings raised since the last call, each once, in order; R re-raises them."""
    taken = list(dict.fromkeys(_WARNINGS))
    _WARNINGS.clear()
    return taken


def _relaying_warnings(function):
    """``function``, with the warnings it raises recorded for R instead of printed to Python's stderr."""
    import functools
    import warnings

    @functools.wraps(function)
    def relayed(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return function(*args, **kwargs)
            finally:
                _WARNINGS.extend(str(w.message) for w in caught)

    return relayed


for _name, _function in list(globals().items()):
    if (not _name.startswith("_") and _name != "take_warnings" and callable(_function)
            and getattr(_function, "__module__", None) == __name__):
        globals()[_name] = _relaying_warnings(_function)
