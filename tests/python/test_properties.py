"""Three laws of a trustworthy benchmark, checked on data hypothesis draws.

1. A score equals an independent numpy computation on the same genes: whatever the pseudobulk, the condition
   names, and the custom model's output (in order or shuffled, a matrix or a frame, whole, partly or wholly NaN).
2. A rerun into the same folder reuses a cell only when a fresh run would compute the same numbers, whatever the
   model's parameters (scalars, sets, arrays past numpy's abbreviation, frames) and however they changed.
3. No file that linpert did not write is changed, whatever the output folder holds and whether the run goes on or
   is refused.
"""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import linpert
from linpert import benchmark
from linpert.models import FunctionModel

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                           HealthCheck.function_scoped_fixture])

# gene symbols as HGNC and Ensembl write them: letters, digits and . - : / @ '
GENES = st.from_regex(r"[A-Za-z][A-Za-z0-9.\-:@']{0,7}", fullmatch=True).filter(lambda g: g.lower() not in (
    "ctrl", "nan", "none", "na"))


@st.composite
def screens(draw):
    """A pseudobulk of a combinatorial screen: ctrl, singles and doubles (each pair written in one order)."""
    genes = draw(st.lists(GENES, min_size=5, max_size=8, unique_by=str.lower))
    pairs = draw(st.lists(st.sampled_from(list(itertools.combinations(genes, 2))), min_size=6, max_size=12,
                          unique=True))
    doubles = [f"{a}+{b}" if draw(st.booleans()) else f"{b}+{a}" for a, b in pairs]
    names = ["ctrl", *(f"{g}+ctrl" for g in genes), *doubles]
    n_genes = draw(st.integers(6, 30))
    values = draw(st.lists(st.floats(-3, 8, allow_nan=False, width=32), min_size=len(names) * n_genes,
                           max_size=len(names) * n_genes))
    X = np.asarray(values, dtype=np.float64).reshape(len(names), n_genes)
    readout = [f"g{i}" for i in range(n_genes)]
    return linpert.as_pseudobulk(X, names, readout), draw(st.integers(1, n_genes))


def _expected(predicted: np.ndarray, observed: np.ndarray, control: np.ndarray) -> tuple[float, float]:
    """L2 and Pearson delta as the paper defines them, computed here without linpert."""
    if not np.isfinite(predicted).all():
        return np.nan, np.nan
    l2 = float(np.sqrt(np.sum((predicted - observed) ** 2)))
    a, b = predicted - control, observed - control
    a, b = a - a.mean(), b - b.mean()
    tiny = 1e-24 * a.size
    if a.size < 2 or (a * a).sum() <= tiny or (b * b).sum() <= tiny:
        return l2, np.nan
    return l2, float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), -1, 1))


@SETTINGS
@given(screen=screens(), data=st.data())
def test_every_score_equals_an_independent_computation(screen, data):
    pb, n_read = screen
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    truth = pd.DataFrame(pb.X + rng.normal(scale=0.5, size=pb.shape), index=pb.obs_names, columns=pb.var_names)
    blank = data.draw(st.sampled_from(["none", "one gene", "whole rows"]))
    if blank == "one gene":
        truth.iloc[rng.integers(len(truth)), rng.integers(pb.n_vars)] = np.nan
    elif blank == "whole rows":
        truth.iloc[rng.choice(len(truth), 2, replace=False)] = np.nan
    shape = data.draw(st.sampled_from(["matrix", "shuffled frame"]))

    def predict(state, conditions):
        rows = truth.loc[conditions]
        if shape == "matrix":
            return rows.to_numpy()
        return rows.sample(frac=1, random_state=1).sample(frac=1, axis=1, random_state=2)

    model = FunctionModel(fit=lambda train: None, predict=predict, name="drawn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = benchmark.run(pb, split="double", seeds=[1], models=[("drawn", model)], n_genes=n_read,
                                   progress=False, interactions=False, metrics=[])
        except ValueError as err:  # every prediction NaN: refused, never scored
            assert "No model predicted anything" in str(err)
            return
    control = pb["ctrl"].X.ravel()
    readout = np.argsort(-control, kind="stable")[:n_read]
    for row in result.results.itertuples():
        l2, delta = _expected(truth.loc[row.perturbation].to_numpy()[readout], pb[row.perturbation].X.ravel()[readout],
                              control[readout])
        np.testing.assert_allclose([row.l2, row.pearson_delta], [l2, delta], rtol=1e-9, atol=1e-12, equal_nan=True)
        assert bool(row.reason) == np.isnan(l2)


class Tabled:
    """A custom model whose prediction is the control plus ``scale`` times a row of ``table`` (per condition), and
    which carries ``tags`` (a set) and ``padding`` (an array) as parameters that do not change its numbers."""

    def __init__(self, *, table, scale, tags, padding):
        self.table, self.scale, self.tags, self.padding = table, scale, tags, padding

    def get_params(self):
        return {"table": self.table, "scale": self.scale, "tags": self.tags, "padding": self.padding}

    def fit(self, train):
        self.genes_ = train.var_names
        self.ctrl_ = np.asarray(train["ctrl"].X).ravel()
        return self

    def predict(self, conditions):
        import anndata

        table = self.table if isinstance(self.table, pd.DataFrame) else pd.DataFrame(
            self.table, index=self.index_, columns=self.genes_)
        X = self.ctrl_ + self.scale * table.loc[list(conditions), list(self.genes_)].to_numpy()
        return anndata.AnnData(X, obs=pd.DataFrame(index=list(conditions)), var=pd.DataFrame(index=self.genes_))


def _model(pb, values, scale, tags, padding, as_frame):
    table = pd.DataFrame(values, index=pb.obs_names, columns=pb.var_names) if as_frame else values
    model = Tabled(table=table, scale=scale, tags=set(tags), padding=padding)
    model.index_ = pb.obs_names
    return model


@SETTINGS
@given(screen=screens(), data=st.data())
def test_a_cell_is_reused_only_when_a_fresh_run_computes_the_same_numbers(screen, data, tmp_path_factory):
    pb, n_read = screen
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.normal(size=pb.shape)
    padding = np.zeros(data.draw(st.sampled_from([3, 1200])))  # past 1,000 values numpy's repr abbreviates
    tags = data.draw(st.sets(st.sampled_from("abcdefgh"), max_size=5))
    as_frame = data.draw(st.booleans())
    first = _model(pb, values, 1.0, tags, padding, as_frame)

    change = data.draw(st.sampled_from(["nothing", "one table value", "scale", "a tag", "padding", "same copy"]))
    values2, scale2, tags2, padding2 = values.copy(), 1.0, set(tags), padding.copy()
    if change == "one table value":
        values2[rng.integers(pb.n_obs), rng.integers(pb.n_vars)] += 1.0
    elif change == "scale":
        scale2 = 1.0 + 1e-12
    elif change == "a tag":
        tags2 ^= {"z"}
    elif change == "padding":
        padding2[-1] = 1.0
    second = _model(pb, values2, scale2, tags2, padding2, as_frame)

    out = tmp_path_factory.mktemp("run")
    run = dict(split="double", seeds=[1], n_genes=n_read, progress=False, interactions=False, metrics=[])
    benchmark.run(pb, models=[("m", first)], out=out, **run)
    fresh = benchmark.run(pb, models=[("m", second)], **run).results
    try:
        again = benchmark.run(pb, models=[("m", second)], out=out, **run)
    except FileExistsError as err:
        assert change not in ("nothing", "same copy"), err  # the same model must be reused
        assert "differs in: model m" in str(err)
        return
    assert change in ("nothing", "same copy") and again.reused == 1
    pd.testing.assert_frame_equal(again.results, fresh)


USER_FILES = st.dictionaries(
    st.sampled_from(["results.csv", "summary.csv", "report.html", "notes.txt", "figures/l2.png", "cells/a.parquet",
                     "predictions/seed1__additive.parquet", "splits/double_seed1.json", "data.h5ad"]),
    st.binary(min_size=0, max_size=40), min_size=1, max_size=4)


@SETTINGS
@given(user=USER_FILES, earlier=st.booleans(), seeds=st.sampled_from([[1], [1, 2]]))
def test_no_file_linpert_did_not_write_is_changed(user, earlier, seeds, tmp_path_factory):
    from conftest import make_pseudobulk

    out = tmp_path_factory.mktemp("out")
    pb = make_pseudobulk(n_genes=40, n_singles=6, n_doubles=8)
    run = dict(split="double", progress=False, interactions=False, metrics=[])
    if earlier:  # a folder of an earlier run, to which the user added files
        benchmark.run(pb, models=["additive"], seeds=[1], out=out, **run)
    before = {}
    for name, content in user.items():
        path = out / name
        assume(not path.exists())  # the user's file, not one linpert wrote
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        before[path] = content
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            benchmark.run(pb, models=["additive"], seeds=seeds, out=out, **run)
        except (FileExistsError, ValueError):
            pass
        if (out / "report.html") in before:
            with pytest.raises((FileExistsError, FileNotFoundError), match="did not write it|not a finished"):
                linpert.report.write_report(out, out / "report.html")
    assert {path: Path(path).read_bytes() for path in before} == before
