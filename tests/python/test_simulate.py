"""Tests of linpert.datasets.simulate: GEARS' format, the generative model, and that the stored truth is the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

import linpert
from linpert import parse_condition
from linpert.datasets._simulate import (
    INTERACTION_CLASSES,
    _expected_log1p_nb,
    _expected_log_normalized,
    gene_symbols,
    saturating_response,
    simulate,
)

SMALL = dict(n_genes=300, n_singles=12, n_doubles=10, cells_per_condition=30, n_control_cells=200)


@pytest.fixture(scope="module")
def small():
    return simulate("norman", seed=0, **SMALL)


def observed_means(adata) -> pd.DataFrame:
    """Pseudobulk (linpert.pseudobulk), rows and columns in the order of the stored truth."""
    pb = linpert.pseudobulk(adata)
    truth = adata.uns["linpert_truth"]
    return pd.DataFrame(pb.X, index=pb.obs_names, columns=pb.var_names).loc[
        list(truth["conditions"]), list(adata.var["gene_name"])
    ]


def truth_frame(adata, key: str) -> pd.DataFrame:
    truth = adata.uns["linpert_truth"]
    return pd.DataFrame(truth[key], index=list(truth["conditions"]), columns=list(adata.var["gene_name"]))


def test_same_seed_same_object_other_seed_differs(small):
    again = simulate("norman", seed=0, **SMALL)
    other = simulate("norman", seed=1, **SMALL)
    for a in (again,):
        assert (a.layers["counts"] != small.layers["counts"]).nnz == 0
        np.testing.assert_array_equal(a.X.toarray(), small.X.toarray())
        pd.testing.assert_frame_equal(a.obs, small.obs)
        pd.testing.assert_frame_equal(a.var, small.var)
        np.testing.assert_array_equal(a.uns["linpert_truth"]["expected"], small.uns["linpert_truth"]["expected"])
        pd.testing.assert_frame_equal(a.uns["linpert_truth"]["interactions"], small.uns["linpert_truth"]["interactions"])
    assert other.layers["counts"].shape == small.layers["counts"].shape
    assert (other.layers["counts"] != small.layers["counts"]).nnz > 0
    assert not np.allclose(other.uns["linpert_truth"]["log_mean"], small.uns["linpert_truth"]["log_mean"])


def test_gears_format(small):
    obs, var = small.obs, small.var
    assert list(obs.columns[:5]) == ["condition", "cell_type", "dose_val", "control", "condition_name"]
    conditions = obs["condition"].astype(str)
    is_ctrl = conditions == "ctrl"
    assert is_ctrl.sum() == 200
    assert (obs["control"] == is_ctrl.astype(int)).all()
    assert set(obs.loc[is_ctrl, "dose_val"]) == {"1"} and set(obs.loc[~is_ctrl, "dose_val"]) == {"1+1"}
    expected_name = obs["cell_type"].astype(str) + "_" + conditions + "_" + obs["dose_val"].astype(str)
    assert (obs["condition_name"].astype(str) == expected_name).all()
    assert obs["condition_name"].iloc[0] == "K562_ctrl_1"
    # canonical names, and every perturbed gene is a measured gene
    parsed = {c: parse_condition(c) for c in conditions.unique()}
    assert all(p.name == c for c, p in parsed.items())
    kinds = pd.Series([p.kind for p in parsed.values()]).value_counts()
    assert kinds.to_dict() == {"single": 12, "double": 10, "control": 1}
    assert set().union(*(p.genes for p in parsed.values())) <= set(var["gene_name"])
    # doubles are pairs of the singles' genes
    single_genes = {p.genes[0] for p in parsed.values() if p.kind == "single"}
    assert all(set(p.genes) <= single_genes for p in parsed.values() if p.kind == "double")
    # symbols unique and parseable, IDs Ensembl-like
    assert var["gene_name"].is_unique and var.index.is_unique
    assert all(parse_condition(f"{g}+ctrl").genes == (g,) for g in var["gene_name"])
    assert all(i.startswith("ENSG") and len(i) == 15 and i[4:].isdigit() for i in var.index)
    assert gene_symbols(300) == list(var["gene_name"])  # deterministic, independent of the seed
    assert isinstance(small.X, sparse.csr_matrix) and small.X.dtype == np.float32


def test_log_normalisation_identity(small):
    counts = small.layers["counts"]
    assert isinstance(counts, sparse.csr_matrix) and np.issubdtype(counts.dtype, np.integer)
    dense_counts = counts.toarray().astype(np.float64)
    totals = dense_counts.sum(axis=1)
    np.testing.assert_array_equal(small.obs["total_count"].to_numpy(), totals)
    target = np.median(totals)  # scanpy's normalize_total default
    assert small.uns["linpert_truth"]["normalize_target"] == pytest.approx(target)
    X = small.X.toarray()
    np.testing.assert_allclose(np.expm1(X.astype(np.float64)).sum(axis=1), target, rtol=1e-5)
    np.testing.assert_allclose(X, np.log1p(dense_counts / totals[:, None] * target), rtol=1e-6, atol=1e-6)
    assert (small.X != 0).nnz == counts.nnz


def test_sparsity_is_realistic():
    adata = simulate("replogle", n_genes=1000, n_singles=10, cells_per_condition=20, n_control_cells=500, seed=2)
    counts = adata.layers["counts"]
    zero_per_gene = 1 - counts.getnnz(axis=0) / counts.shape[0]
    assert 0.6 < 1 - counts.nnz / np.prod(counts.shape) < 0.8
    assert 0.7 < np.median(zero_per_gene) < 0.85
    # heavy tail: a few genes far above the typical one
    gene_mean = np.asarray(counts[adata.obs["control"].to_numpy() == 1].mean(axis=0)).ravel()
    assert gene_mean.max() > 50 * np.median(gene_mean)
    # library sizes vary across cells (log-normal size factors, sdlog 0.35)
    ctrl_totals = adata.obs.loc[adata.obs["control"] == 1, "total_count"]
    assert 0.25 < np.std(np.log(ctrl_totals)) < 0.5


@pytest.mark.parametrize("modality, sign", [("crispri", -1), ("crispra", 1)])
def test_target_gene_moves_the_right_way(modality, sign):
    adata = simulate("norman", seed=4, modality=modality, **SMALL)
    observed, expected = observed_means(adata), truth_frame(adata, "expected")
    singles = [c for c in observed.index if c.endswith("+ctrl")]
    targets = [parse_condition(c).genes[0] for c in singles]
    truth_change = np.array([expected.at[c, g] - expected.at["ctrl", g] for c, g in zip(singles, targets)])
    observed_change = np.array([observed.at[c, g] - observed.at["ctrl", g] for c, g in zip(singles, targets)])
    assert np.all(sign * truth_change > 0)
    assert np.mean(sign * observed_change > 0) >= 0.9
    effect = adata.uns["linpert_truth"]["perturbations"]["target_effect"].to_numpy()
    if modality == "crispri":  # knocked down to 5-30 % of the control level
        assert np.all((effect >= np.log(0.05)) & (effect <= np.log(0.3)))
    else:
        assert np.all(effect >= 2.0)


def test_quadrature_matches_negative_binomial_sums():
    # independent reference: sum over scipy's NB pmf
    for mean, dispersion, scale in [(0.01, 0.2, 1.0), (0.3, 0.05, 1.2), (5.0, 1.0, 0.8), (80.0, 0.2, 0.9)]:
        c = np.arange(4000)
        pmf = stats.nbinom.pmf(c, 1 / dispersion, 1 / (1 + mean * dispersion))
        assert _expected_log1p_nb(mean, dispersion, scale) == pytest.approx(np.sum(pmf * np.log1p(scale * c)), abs=1e-9)


def test_stored_expectation_matches_direct_quadrature(small):
    truth = small.uns["linpert_truth"]
    log_mean, expected = truth["log_mean"], truth["expected"]
    a = truth["normalize_target"] / np.exp(log_mean).sum(axis=1)
    direct = _expected_log_normalized(np.exp(log_mean), truth["dispersion"][None, :], a[:, None])
    np.testing.assert_allclose(expected, direct, atol=1e-3)


def test_pseudobulk_approaches_the_truth_as_cells_grow():
    design = dict(n_genes=300, n_singles=4, n_doubles=2, seed=5)
    errors = []
    for cells in (25, 400):
        adata = simulate("norman", cells_per_condition=cells, n_control_cells=cells, **design)
        errors.append(np.abs(observed_means(adata) - truth_frame(adata, "expected")).to_numpy().mean())
    # sampling error shrinks like 1/sqrt(cells): 16x the cells -> about 1/4 the error
    assert errors[1] < 0.35 * errors[0]
    assert errors[1] < 0.02


def test_interactions_come_from_saturation_and_are_bookkept_and_visible():
    adata = simulate("norman", seed=3, n_genes=300, n_singles=12, n_doubles=10, cells_per_condition=150,
                     n_control_cells=300)
    truth = adata.uns["linpert_truth"]
    table = truth["interactions"]
    assert list(table.columns) == ["condition", "gene", "class", "additive", "deviation"]
    assert set(table["class"]) <= set(INTERACTION_CLASSES) and (table["deviation"].abs() >= 0.3).all()

    # the mechanism: a double's change is each gene's saturating response to the summed drives of its singles
    log_mean = truth_frame(adata, "log_mean")
    capacity, offset = truth["saturation_capacity"], truth["saturation_offset"]
    ctrl = log_mean.loc["ctrl"].to_numpy()
    targets = set(truth["perturbations"]["target"])
    doubles = [c for c in log_mean.index if parse_condition(c).kind == "double"]
    gene_names = list(log_mean.columns)
    for c in doubles:
        a, b = parse_condition(c).genes
        single_a = log_mean.loc[f"{a}+ctrl"].to_numpy() - ctrl
        single_b = log_mean.loc[f"{b}+ctrl"].to_numpy() - ctrl
        # invert each single's response to recover its drive, then respond to the sum
        drive = [_inverse_response(s, capacity, offset) for s in (single_a, single_b)]
        want = saturating_response(drive[0] + drive[1], capacity, offset)
        keep = [g not in (a, b) for g in gene_names]  # the guides set the targets' own levels
        np.testing.assert_allclose((log_mean.loc[c].to_numpy() - ctrl)[keep], want[keep], atol=1e-8)
        # and the bookkeeping: every pair with |deviation| >= 0.3 is in the table, with that deviation
        deviation = log_mean.loc[c].to_numpy() - ctrl - single_a - single_b
        listed = table[table["condition"] == c].set_index("gene")["deviation"]
        big = pd.Series(deviation, index=gene_names)[np.abs(deviation) >= 0.3]
        pd.testing.assert_series_equal(listed.sort_index(), big.sort_index(), check_names=False)

    # where the singles agree, saturation makes buffering the commonest class; the deviations are visible in the
    # observed pseudobulk
    assert table["class"].value_counts().drop("other", errors="ignore").index[0] == "buffering"
    observed = observed_means(adata)
    key = list(zip(table["condition"], table["gene"]))
    dev = np.array([observed.at[c, g] - observed.at[f"{c.split('+')[0]}+ctrl", g]
                    - observed.at[f"{c.split('+')[1]}+ctrl", g] + observed.at["ctrl", g] for c, g in key])
    clear = np.abs(table["additive"].to_numpy()) > 1
    assert np.mean(np.sign(dev[clear]) == np.sign(table["deviation"].to_numpy()[clear])) > 0.8


def _inverse_response(change, capacity, offset):
    """The drive whose saturating response is ``change`` (the response is strictly increasing)."""
    base = np.tanh(offset / capacity)
    inner = np.clip(change * (1 - base**2) / capacity + base, -1 + 1e-15, 1 - 1e-15)
    return capacity * np.arctanh(inner) - offset


def test_saturating_response_is_the_identity_without_saturation_and_bounded_with_it():
    drive = np.linspace(-5, 5, 101)
    np.testing.assert_array_equal(saturating_response(drive, np.full(101, np.inf), np.zeros(101)), drive)
    response = saturating_response(drive, np.full(101, 0.5), np.full(101, 0.25))
    assert np.all(np.diff(response) > 0) and response.max() < 0.5 * 1.5 and response.min() > -0.5 * 3
    slope = np.gradient(saturating_response(np.array([-1e-4, 0, 1e-4]), np.full(3, 0.5), np.full(3, 0.25)), 1e-4)
    assert slope[1] == pytest.approx(1.0, rel=1e-6)  # small effects pass as they are


def test_single_effects_are_low_rank():
    rank = 3
    adata = simulate("replogle", seed=6, n_genes=300, n_singles=30, rank=rank, cells_per_condition=2,
                     n_control_cells=10)
    truth = adata.uns["linpert_truth"]
    effects = truth["log_mean"][1:] - truth["log_mean"][0]
    targets = pd.Index(adata.var["gene_name"]).get_indexer(truth["perturbations"]["target"])
    other = np.setdiff1d(np.arange(adata.n_vars), targets)  # the targets' own changes are set by the guides
    singular = np.linalg.svd(effects[:, other], compute_uv=False)
    assert singular[rank - 1] > 3 * singular[rank]
    # the low-rank part is exactly loadings × factors; what remains is sparse gene-specific noise (~2 %)
    low_rank = truth["perturbation_factors"] @ truth["gene_loadings"].T
    assert truth["gene_loadings"].shape == (300, rank) and truth["perturbation_factors"].shape == (30, rank)
    residual = (effects - low_rank)[:, other]
    assert 0.01 < np.mean(np.abs(residual) > 1e-12) < 0.03


def test_no_doubles_means_no_interactions():
    adata = simulate("norman", seed=0, n_genes=200, n_singles=5, n_doubles=0, cells_per_condition=5,
                     n_control_cells=20)
    assert adata.obs["condition"].nunique() == 6
    assert len(adata.uns["linpert_truth"]["interactions"]) == 0


def test_h5ad_round_trip(small, tmp_path):
    import anndata

    path = tmp_path / "sim.h5ad"
    small.write_h5ad(path)
    back = anndata.read_h5ad(path)
    np.testing.assert_array_equal(back.X.toarray(), small.X.toarray())
    assert (back.layers["counts"] != small.layers["counts"]).nnz == 0
    pd.testing.assert_frame_equal(back.obs, small.obs)
    truth, back_truth = small.uns["linpert_truth"], back.uns["linpert_truth"]
    for key in ("log_mean", "expected", "dispersion", "gene_loadings", "perturbation_factors"):
        np.testing.assert_array_equal(back_truth[key], truth[key])
    assert list(back_truth["conditions"]) == list(truth["conditions"])
    pd.testing.assert_frame_equal(back_truth["interactions"], truth["interactions"])
    pd.testing.assert_frame_equal(back_truth["perturbations"], truth["perturbations"])
    assert back.uns["linpert_simulation"]["modality"] == "crispra"
    assert back_truth["params"] == truth["params"] and back_truth["seed"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(preset="adamson"), "Unknown preset 'adamson'"),
        (dict(modality="crispr-ko"), "Unknown modality 'crispr-ko'"),
        (dict(n_doubles=100), "n_doubles=100 exceeds the 66 pairs"),
        (dict(n_singles=290), "n_singles=290 exceeds the 270 genes"),
        (dict(cells_per_condition=0), "cells_per_condition must be an integer >= 1"),
        (dict(n_genes=300.5), "n_genes must be an integer"),
        (dict(saturation=0), r"saturation must be a number, above 0"),
        (dict(effect_scale=-1), r"effect_scale must be a number, 0 or more"),
        (dict(seed=True), "seed must be a non-negative integer"),
        (dict(cell_type="K562_x"), "cell_type must be a non-empty string without '_'"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    options = {**SMALL, **kwargs}
    preset = options.pop("preset", "norman")
    with pytest.raises(ValueError, match=message):
        simulate(preset, **options)


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, n_cells, n_singles, n_doubles, modality",
    [("norman", 2_000 + 224 * 120, 100, 124, "crispra"), ("replogle", 2_000 + 1_000 * 20, 1_000, 0, "crispri")],
)
def test_presets_have_the_documented_sizes(preset, n_cells, n_singles, n_doubles, modality):
    adata = simulate(preset)
    assert adata.shape == (n_cells, 5_000)
    kinds = pd.Series([parse_condition(c).kind for c in adata.obs["condition"].cat.categories]).value_counts()
    assert kinds.get("single", 0) == n_singles and kinds.get("double", 0) == n_doubles
    assert adata.uns["linpert_simulation"]["modality"] == modality
    assert (adata.obs["control"] == 1).sum() == 2_000
