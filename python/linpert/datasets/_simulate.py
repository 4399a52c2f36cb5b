"""Simulate Perturb-seq data with a known ground truth, in GEARS' cell-level format.

:func:`simulate` draws counts from a generative model whose every part is stored with the data, so that a benchmark
run on it can be scored against the truth rather than against noisy observed means:

1. a control profile: per-gene mean counts, heavy-tailed (log-normal), and gene-wise negative-binomial dispersion;
2. single perturbations with low-rank effects on log-scale means (gene loadings × perturbation factors: a generic
   response most perturbations share, and programs that follow the target gene's own membership) plus sparse
   gene-specific noise, and the target gene itself knocked down (CRISPRi) or raised (CRISPRa);
3. a saturating response: each gene turns the perturbations' combined drive into a log-scale change through its own
   saturating curve (:func:`saturating_response`), so two strong activators do not add in log space (buffering), a
   gene near the floor of its curve responds more than additively (synergy), and the genetic interactions arise from
   that mechanism rather than being planted;
4. cells: log-normal library sizes, negative-binomial counts, then ``log1p(normalize_total(counts))``.

The truth (``uns['linpert_truth']``) holds both the log-scale means the counts were drawn from (``log_mean``) and the
value the pseudobulk converges to as cells grow (``expected``: the mean of the log-normalised expression, computed by
quadrature; see :func:`_expected_log1p_nb`).
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._conditions import CONTROL, parse_condition

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["simulate", "saturating_response", "PRESETS"]

# Defaults per preset; every keyword of `simulate` overrides them.
PRESETS: dict[str, dict[str, Any]] = {
    # Norman et al. 2019: CRISPRa in K562, 100 singles and 124 doubles of those genes (spec §1).
    "norman": dict(
        modality="crispra",
        n_genes=5_000,
        n_singles=100,
        n_doubles=124,
        cells_per_condition=120,
        n_control_cells=2_000,
        rank=10,
        # calibrated (benchmarks/simulation_calibration.py) so that, as in the paper's Norman, about 4 % of (double,
        # gene) pairs are called interactions, most of them buffering, and no change finds them better than linear
        saturation=0.4,
        effect_scale=0.8,
        cell_type="K562",
    ),
    # Replogle et al. 2022, K562 essential: CRISPRi, ~1,000 singles read out on 5,000 genes, no doubles.
    "replogle": dict(
        modality="crispri",
        n_genes=5_000,
        n_singles=1_000,
        n_doubles=0,
        cells_per_condition=20,
        n_control_cells=2_000,
        rank=10,
        saturation=math.inf,  # single perturbations: no second drive to saturate against
        # calibrated against the paper's Adamson and Replogle results (benchmarks/simulation_calibration.py): the
        # mean baseline's Pearson delta is 0.41-0.72 there, and the linear model barely beats the mean
        effect_scale=0.25,
        cell_type="K562",
        target_coupling=0.4,
        generic_sd=0.3,
    ),
}
MODALITIES = ("crispra", "crispri")
INTERACTION_CLASSES = ("buffering", "synergy", "opposite", "other")

# --- Constants of the generative model (why each value, in one line) ---
# Mean count per gene in a median-sized cell: log-normal, median 0.25, sdlog 1.5: the median gene has ~79 % zeros
# and a few reach tens of counts per cell, as in 10x data restricted to a few thousand genes.
_LOG_MEAN_CENTER, _LOG_MEAN_SD = math.log(0.25), 1.5
# NB dispersion (var = mu + phi mu^2): gene-wise, log-normal around 0.2, the range of UMI data.
_LOG_DISPERSION_CENTER, _LOG_DISPERSION_SD = math.log(0.2), 0.5
# Library size: log-normal size factor, median 1, sdlog 0.35 (totals vary about 2-fold across most cells).
_SIZE_FACTOR_SD = 0.35
_CELL_LINE_SD = 0.5  # how far another cell line's control log means lie from the first's
# Perturbation strength: log-normal, median 1, capped at 3; some perturbations barely act, a few act strongly.
_STRENGTH_SD, _STRENGTH_MAX = 0.5, 3.0
# Variance of the k-th latent program decays as 0.8^(2k): a few programs dominate, as in real perturbation screens.
_PROGRAM_DECAY = 0.8
# Program 0 is a generic response (growth, stress) that most perturbations push the same way: its factor is
# N(1, 0.5), so the mean over perturbations carries real signal, as the paper's 'mean' baseline finds in real screens.
_GENERIC_MEAN, _GENERIC_SD = 1.0, 0.5
# Perturbing a gene moves the programs that gene belongs to: the other factors correlate 0.7 with the target's own
# (standardised) loadings. Genes of one program then have similar effects and similar expression across
# perturbations, which is the structure the linear model's PCA embeddings exploit in real data. A preset may set its
# own (``target_coupling``, ``generic_sd``).
_TARGET_COUPLING = 0.7
# Gene-specific effects outside the programs: 2 % of (perturbation, gene) pairs, sd 0.3 on the log scale.
_NOISE_DENSITY, _NOISE_SD = 0.02, 0.3
# Saturation: gene g's capacity is saturation x log-normal(0, 0.4), and its curve's offset (where control sits on it)
# is capacity x N(0.5, 0.5): most genes sit nearer their ceiling, so up-regulation saturates first (buffering), and a
# few sit near their floor, where two drives together move them more than each alone (synergy).
_CAPACITY_SD = 0.4
_OFFSET_MEAN, _OFFSET_SD = 0.5, 0.5
# A (double, gene) pair of the truth's interaction table: |deviation from additivity| >= 0.3 on the log-mean scale,
# about what a screen of this size can call.
_TRUE_INTERACTION = 0.3
# Cells per chunk while drawing counts: bounds the dense temporaries to a few tens of MB.
_CHUNK_CELLS = 512

# Gene-family prefixes for the synthetic symbols: realistic-looking, all valid symbols, none a prefix+digit of another.
_FAMILIES = (
    "ZNF SLC TMEM KLF SOX FOX RPL RPS CDK MAPK NR ATP ABC CCN DDX EIF GATA HOX IRF JUN KIF LRRC MYO NDUF PSM RAB SEC "
    "TBX UBE WDR ZBTB ANK BCL CAMK DUSP ELF FAM GPR HSP IFT KCN LAMA MED NUP POLR RBM SF TRIM USP VPS YTH ARHGAP "
    "CEBP ETS PRDM SMAD STAT TNF WNT"
).split()


def simulate(
    preset: str = "norman",
    *,
    seed: int = 0,
    n_genes: int | None = None,
    n_singles: int | None = None,
    n_doubles: int | None = None,
    cells_per_condition: int | None = None,
    n_control_cells: int | None = None,
    modality: str | None = None,
    rank: int | None = None,
    saturation: float | None = None,
    effect_scale: float | None = None,
    cell_type: str | None = None,
    cell_line: int = 0,
) -> AnnData:
    """Simulate a Perturb-seq experiment with known ground truth, as cell-level data in GEARS' format.

    Parameters
    ----------
    preset
        ``"norman"`` (CRISPRa, 100 singles + 124 doubles, 5,000 genes, 120 cells per condition, 2,000 control cells)
        or ``"replogle"`` (CRISPRi, 1,000 singles, no doubles, 5,000 genes, 20 cells per condition, 2,000 control
        cells). Every other keyword overrides the preset.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives an identical object.
    n_genes
        Measured genes. Perturbation targets are measured genes.
    n_singles
        Single perturbations (``A+ctrl``), one per target gene.
    n_doubles
        Double perturbations (``A+B``), pairs of the singles' genes drawn without replacement.
    cells_per_condition
        Cells per perturbation condition.
    n_control_cells
        Control cells (condition ``ctrl``).
    modality
        ``"crispra"`` raises the target gene strongly; ``"crispri"`` knocks it down by 70-95 %.
    rank
        Number of latent programs through which perturbations act (the rank of the shared effect structure).
    saturation
        Median log-fold-change capacity of a gene (:func:`saturating_response`): how far a gene's log mean can move
        before its response saturates. Smaller means stronger genetic interactions; ``math.inf`` makes every
        double exactly additive on the log-mean scale.
    effect_scale
        Standard deviation, across genes, of a median-strength perturbation's effect on log-scale means.
    cell_type
        Written to ``obs['cell_type']`` and into ``obs['condition_name']``.
    cell_line
        0: the screen itself. Another number: the same screen in another cell line (as the paper's K562 and RPE1,
        Extended Data Fig. 9): the same targets and perturbation effects on a control that differs gene by gene
        (log-mean shifts of standard deviation 0.5), with other cells. :class:`linpert.models.TransferModel` learns
        from one line to predict the other.

    Returns
    -------
    AnnData
        Cells × genes. ``X``: CSR float32 ``log1p`` of counts scaled to the median total count (natural log, as
        scanpy's ``normalize_total`` + ``log1p``); ``layers['counts']``: CSR int32 counts; ``obs``: ``condition``
        (``ctrl``, ``A+ctrl``, ``A+B``), ``cell_type``, ``dose_val`` (``'1'`` for ctrl, ``'1+1'`` otherwise),
        ``control`` (1 for ctrl), ``condition_name`` (``f"{cell_type}_{condition}_{dose_val}"``), ``total_count``;
        ``var``: index Ensembl-like IDs, ``gene_name`` symbols. ``uns['linpert_simulation']``: the parameters;
        ``uns['linpert_truth']``: the ground truth (see Notes).

    Notes
    -----
    ``uns['linpert_truth']`` holds, with rows in the order of ``conditions`` and columns in ``var`` order:
    ``log_mean`` (natural-log mean count of a median-sized cell, the parameter the counts were drawn from; a single's
    effect is its row minus the ctrl row), ``expected`` (the mean log-normalised expression the pseudobulk of a
    condition converges to), ``dispersion``, ``gene_loadings`` (genes × rank) and ``perturbation_factors``
    (singles × rank) whose product is the low-rank part of the singles' effects, ``perturbations`` (a table of target
    gene, strength and target effect per single), ``interactions`` (a tidy table of the pairs whose change departs from
    additivity by at least 0.3 on the log-mean scale: condition, gene, class, additive change and deviation),
    ``saturation_capacity`` and ``saturation_offset`` (each gene's :func:`saturating_response`),
    ``normalize_target``, ``seed`` and ``params``.

    Examples
    --------
    >>> adata = simulate("norman", n_genes=200, n_singles=6, n_doubles=4, cells_per_condition=10,
    ...                  n_control_cells=50, seed=1)
    >>> adata.shape
    (150, 200)
    >>> adata.obs["condition"].nunique(), adata.obs["dose_val"].iloc[0], adata.obs["condition_name"].iloc[0]
    (11, '1', 'K562_ctrl_1')
    >>> adata.uns["linpert_truth"]["interactions"]["class"].value_counts().index[0]  # saturation: mostly buffering
    'buffering'
    """
    params = _resolve_params(
        preset,
        seed=seed,
        n_genes=n_genes,
        n_singles=n_singles,
        n_doubles=n_doubles,
        cells_per_condition=cells_per_condition,
        n_control_cells=n_control_cells,
        modality=modality,
        rank=rank,
        saturation=saturation,
        effect_scale=effect_scale,
        cell_type=cell_type,
        cell_line=cell_line,
    )
    rng = np.random.default_rng(params["seed"])
    n_genes = params["n_genes"]
    symbols, gene_ids = gene_symbols(n_genes), _gene_ids(n_genes)

    ctrl_log_mean = rng.normal(_LOG_MEAN_CENTER, _LOG_MEAN_SD, n_genes)
    dispersion = np.exp(rng.normal(_LOG_DISPERSION_CENTER, _LOG_DISPERSION_SD, n_genes))
    targets = _pick_targets(ctrl_log_mean, params["n_singles"], params["modality"], rng)
    singles = _single_effects(ctrl_log_mean, targets, params, rng)
    pairs = _pick_pairs(params["n_singles"], params["n_doubles"], rng)
    curves = _saturation_curves(n_genes, params["saturation"], rng)
    single_change, double_change = _respond(singles, targets, pairs, curves)
    if params["cell_line"]:  # the same effects on another line's control, and that line's own cells
        rng = np.random.default_rng([params["seed"], params["cell_line"]])
        ctrl_log_mean = ctrl_log_mean + rng.normal(0.0, _CELL_LINE_SD, n_genes)

    single_names = [f"{symbols[t]}+{CONTROL}" for t in targets]
    double_names = [f"{symbols[targets[a]]}+{symbols[targets[b]]}" for a, b in pairs]
    conditions = [CONTROL, *single_names, *double_names]
    assert all(parse_condition(c).name == c for c in conditions)  # canonical by construction

    log_mean = np.empty((len(conditions), n_genes))
    log_mean[0] = ctrl_log_mean
    log_mean[1 : 1 + len(targets)] = ctrl_log_mean + single_change
    log_mean[1 + len(targets) :] = ctrl_log_mean + double_change

    n_cells = np.array([params["n_control_cells"]] + [params["cells_per_condition"]] * (len(conditions) - 1))
    cell_condition = np.repeat(np.arange(len(conditions)), n_cells)
    size_factors = np.exp(rng.normal(0.0, _SIZE_FACTOR_SD, cell_condition.size))
    counts = _draw_counts(np.exp(log_mean), dispersion, cell_condition, size_factors, rng)
    X, totals, target = _log_normalize(counts)

    # a = T / M_p: the median total over the expected total of a median-sized cell of condition p
    expected = _expected_pseudobulk(log_mean, dispersion, target / np.exp(log_mean).sum(axis=1))

    truth = {
        "conditions": np.asarray(conditions, dtype=object),
        "log_mean": log_mean,
        "expected": expected,
        "dispersion": dispersion,
        "gene_loadings": singles["loadings"],
        "perturbation_factors": singles["factors"],
        "perturbations": pd.DataFrame(
            {
                "target": [symbols[t] for t in targets],
                "strength": singles["strength"],
                "target_effect": singles["target_effect"],
            },
            index=pd.Index(single_names, name="condition"),
        ),
        "interactions": _interaction_table(single_change, double_change, pairs, double_names, symbols),
        "saturation_capacity": curves[0],
        "saturation_offset": curves[1],
        "size_factor_sdlog": _SIZE_FACTOR_SD,
        "normalize_target": float(target),
        "seed": params["seed"],
        "params": dict(params),
    }
    return _assemble(X, counts, totals, cell_condition, conditions, symbols, gene_ids, params, truth)


def gene_symbols(n: int) -> list[str]:
    """Deterministic, unique, realistic-looking gene symbols: a family prefix and a number (``ZNF1``, ``SLC1``, ...).

    Examples
    --------
    >>> gene_symbols(3)
    ['ZNF1', 'SLC1', 'TMEM1']
    """
    k = len(_FAMILIES)
    return [f"{_FAMILIES[i % k]}{i // k + 1}" for i in range(n)]


def _gene_ids(n: int) -> list[str]:
    return [f"ENSG{i + 1:011d}" for i in range(n)]


def _resolve_params(preset: str, **overrides: Any) -> dict[str, Any]:
    """The preset's defaults with the given keywords on top, checked."""
    if not isinstance(preset, str) or preset.lower() not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Use one of {sorted(PRESETS)}, then override keywords as needed.")
    params: dict[str, Any] = {"preset": preset.lower(), **PRESETS[preset.lower()]}
    params.update({k: v for k, v in overrides.items() if v is not None})

    if not isinstance(params["seed"], Integral) or isinstance(params["seed"], bool) or params["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {params['seed']!r}.")
    minimum = {"n_genes": 2, "n_singles": 1, "n_doubles": 0, "cells_per_condition": 1, "n_control_cells": 1, "rank": 1}
    for key, low in minimum.items():
        value = params[key]
        if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key} must be an integer >= {low}, got {value!r}.")
        params[key] = int(value)
    params["seed"] = int(params["seed"])
    params.setdefault("cell_line", 0)
    line = params["cell_line"]
    if not isinstance(line, Integral) or isinstance(line, bool) or line < 0:
        raise ValueError(f"cell_line must be a non-negative integer (0: the screen itself), got {line!r}.")
    params["cell_line"] = int(params["cell_line"])

    modality = params["modality"]
    if not isinstance(modality, str) or modality.lower() not in MODALITIES:
        raise ValueError(f"Unknown modality {modality!r}. Use 'crispra' (overexpression) or 'crispri' (knockdown).")
    params["modality"] = modality.lower()
    for key, smallest in (("saturation", "above 0"), ("effect_scale", "0 or more")):
        value = params[key]
        number = isinstance(value, Real) and not isinstance(value, bool) and not math.isnan(value)
        if not number or value < 0 or (key == "saturation" and value == 0):
            raise ValueError(f"{key} must be a number, {smallest} (math.inf for none with saturation), got {value!r}.")
        params[key] = float(value)
    if not isinstance(params["cell_type"], str) or not params["cell_type"] or "_" in params["cell_type"]:
        raise ValueError(
            f"cell_type must be a non-empty string without '_' (it is joined into condition_name with '_'), "
            f"got {params['cell_type']!r}."
        )

    eligible = _n_eligible_targets(params["n_genes"], params["modality"])
    if params["n_singles"] > eligible:
        raise ValueError(
            f"n_singles={params['n_singles']} exceeds the {eligible} genes that can be {params['modality']} targets "
            f"among n_genes={params['n_genes']}; ask for fewer singles or more genes."
        )
    n_pairs = params["n_singles"] * (params["n_singles"] - 1) // 2
    if params["n_doubles"] > n_pairs:
        raise ValueError(
            f"n_doubles={params['n_doubles']} exceeds the {n_pairs} pairs of {params['n_singles']} single genes; "
            "ask for fewer doubles or more singles."
        )
    return params


def _n_eligible_targets(n_genes: int, modality: str) -> int:
    # CRISPRi screens target expressed (essential) genes: the upper half by control mean. CRISPRa can raise any
    # gene but the most expressed tenth, which has little room to go up.
    return n_genes - n_genes // 2 if modality == "crispri" else n_genes - n_genes // 10


def _pick_targets(ctrl_log_mean: np.ndarray, n_singles: int, modality: str, rng: np.random.Generator) -> np.ndarray:
    order = np.argsort(ctrl_log_mean, kind="stable")  # ascending mean
    n_eligible = _n_eligible_targets(ctrl_log_mean.size, modality)
    pool = order[-n_eligible:] if modality == "crispri" else order[:n_eligible]
    return np.sort(rng.choice(pool, n_singles, replace=False))


def _single_effects(
    ctrl_log_mean: np.ndarray, targets: np.ndarray, params: dict[str, Any], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Effects of the singles on log-scale means: low-rank programs + sparse gene-specific noise + the target."""
    n_genes, n_singles, rank = ctrl_log_mean.size, targets.size, params["rank"]
    # Program k has sd 0.8^k, normalised so that a strength-1 perturbation's effects have sd effect_scale.
    program_sd = _PROGRAM_DECAY ** np.arange(rank)
    program_sd /= np.sqrt(np.sum(program_sd**2))
    standard_loadings = rng.normal(size=(n_genes, rank))
    loadings = standard_loadings * program_sd * params["effect_scale"]
    strength = np.minimum(np.exp(rng.normal(0.0, _STRENGTH_SD, n_singles)), _STRENGTH_MAX)
    own = standard_loadings[targets]
    coupling = params.get("target_coupling", _TARGET_COUPLING)
    factors = coupling * own + np.sqrt(1 - coupling**2) * rng.normal(size=(n_singles, rank))
    factors[:, 0] = rng.normal(_GENERIC_MEAN, params.get("generic_sd", _GENERIC_SD), n_singles)
    factors *= strength[:, None]
    noise = (rng.random((n_singles, n_genes)) < _NOISE_DENSITY) * rng.normal(0.0, _NOISE_SD, (n_singles, n_genes))
    effects = factors @ loadings.T + noise * strength[:, None]

    if params["modality"] == "crispri":
        # knockdown to 5-30 % of the control level (Replogle's median knockdown is ~85 %)
        target_effect = np.log(rng.uniform(0.05, 0.3, n_singles))
    else:
        # overexpression: 2-4 e-folds, and at least to ~5 counts per cell, since Norman's activated genes are
        # often silent in control cells and end up among the highest expressed
        level = np.exp(rng.normal(math.log(5.0), 0.5, n_singles))
        target_effect = np.maximum(rng.uniform(2.0, 4.0, n_singles), np.log(level) - ctrl_log_mean[targets])
    effects[np.arange(n_singles), targets] = target_effect
    return {
        "effects": effects,
        "loadings": loadings,
        "factors": factors,
        "strength": strength,
        "target_effect": target_effect,
    }


def _pick_pairs(n_singles: int, n_doubles: int, rng: np.random.Generator) -> np.ndarray:
    """Pairs (a, b), a < b, of single indices, in index order."""
    first, second = np.triu_indices(n_singles, k=1)
    chosen = np.sort(rng.choice(first.size, n_doubles, replace=False))
    return np.column_stack([first[chosen], second[chosen]]).astype(np.int64)


def saturating_response(drive: np.ndarray, capacity: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """A gene's log-scale change for a perturbation drive: ``c·[tanh((d+t)/c) − tanh(t/c)] / (1 − tanh²(t/c))``.

    Slope 1 at ``d = 0`` (small effects pass as they are), bounded by about ``c`` on each side, asymmetric by the
    offset ``t``: the side towards which control sits nearer its bound saturates first. An infinite capacity is the
    identity (no saturation).

    Examples
    --------
    >>> d = np.array([0.1, 1.0, 2.0])
    >>> np.round(saturating_response(d, np.full(3, 1.0), np.zeros(3)), 3)  # doubling the drive: far from double
    array([0.1  , 0.762, 0.964])
    """
    drive = np.asarray(drive, dtype=np.float64)
    capacity, offset = np.broadcast_arrays(np.asarray(capacity, dtype=np.float64), np.asarray(offset, dtype=np.float64))
    finite = np.isfinite(capacity)
    if not finite.any():
        return drive.copy()
    c, t = np.where(finite, capacity, 1.0), np.where(finite, offset, 0.0)
    base = np.tanh(t / c)
    response = c * (np.tanh((drive + t) / c) - base) / (1 - base**2)
    return np.where(finite, response, drive)


def _saturation_curves(n_genes: int, saturation: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene capacity and offset of :func:`saturating_response`."""
    capacity = saturation * np.exp(rng.normal(0.0, _CAPACITY_SD, n_genes))
    offset = np.where(np.isfinite(capacity), capacity, 0.0) * rng.normal(_OFFSET_MEAN, _OFFSET_SD, n_genes)
    return capacity, offset


def _respond(singles: dict[str, np.ndarray], targets: np.ndarray, pairs: np.ndarray, curves) -> tuple:
    """The singles' and doubles' log-scale changes: each gene's saturating response to the summed drives.

    The targets' own changes are set by the guides, not by the curves: a single's target keeps its target effect, and
    in a double each target is its single's level plus the other perturbation's effect on it.
    """
    drive = singles["effects"].copy()
    rows = np.arange(targets.size)
    drive[rows, targets] = 0.0
    single = saturating_response(drive, *curves)
    single[rows, targets] = singles["target_effect"]
    if not len(pairs):
        return single, np.zeros((0, single.shape[1]))
    a, b = pairs[:, 0], pairs[:, 1]
    double = saturating_response(drive[a] + drive[b], *curves)
    for own, other in ((a, b), (b, a)):
        column = targets[own]
        double[np.arange(len(pairs)), column] = single[own, column] + single[other, column]
    return single, double


def _interaction_table(single, double, pairs, double_names: list[str], symbols: list[str]) -> pd.DataFrame:
    """Every (double, gene) pair whose log-scale change departs from additivity by at least ``_TRUE_INTERACTION``,
    with its class read off the truth as the paper reads it off the data (spec §4.4)."""
    additive = single[pairs[:, 0]] + single[pairs[:, 1]] if len(pairs) else double
    deviation = double - additive
    row, gene = np.nonzero(np.abs(deviation) >= _TRUE_INTERACTION)
    add, dev = additive[row, gene], deviation[row, gene]
    change = add + dev
    same = np.sign(single[pairs[row, 0], gene]) == np.sign(single[pairs[row, 1], gene]) if len(row) else change > 0
    klass = np.select(
        [~same, change * add < 0, np.abs(change) < np.abs(add)], ["other", "opposite", "buffering"], "synergy"
    )
    return pd.DataFrame(
        {
            "condition": np.asarray(double_names, dtype=object)[row] if len(row) else [],
            "gene": np.asarray(symbols, dtype=object)[gene] if len(row) else [],
            "class": klass.astype(object),
            "additive": add,
            "deviation": dev,
        },
        index=pd.Index([str(i) for i in range(len(row))]),
    ).astype({"condition": object, "gene": object, "class": object, "additive": float, "deviation": float})


def _draw_counts(
    mean: np.ndarray,
    dispersion: np.ndarray,
    cell_condition: np.ndarray,
    size_factors: np.ndarray,
    rng: np.random.Generator,
):
    """Negative-binomial counts (gamma-Poisson), drawn and sparsified chunk by chunk, as CSR int32."""
    from scipy import sparse

    shape = 1.0 / dispersion
    pieces = []
    for start in range(0, cell_condition.size, _CHUNK_CELLS):
        stop = min(start + _CHUNK_CELLS, cell_condition.size)
        cell_mean = mean[cell_condition[start:stop]] * size_factors[start:stop, None]
        rate = rng.gamma(shape, cell_mean * dispersion)
        pieces.append(sparse.csr_matrix(rng.poisson(rate).astype(np.int32)))
    counts = sparse.vstack(pieces, format="csr", dtype=np.int32)
    del pieces
    counts.sort_indices()
    return counts


def _log_normalize(counts) -> tuple[Any, np.ndarray, float]:
    """``log1p`` of counts scaled to the median total (scanpy's ``normalize_total`` default), CSR float32."""
    from scipy import sparse

    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    nonzero = totals > 0
    target = float(np.median(totals[nonzero])) if nonzero.any() else 1.0
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=nonzero)
    data = np.empty(counts.nnz, dtype=np.float32)
    indptr = counts.indptr
    for start in range(0, counts.shape[0], 4 * _CHUNK_CELLS):  # row chunks keep the float64 temporaries small
        stop = min(start + 4 * _CHUNK_CELLS, counts.shape[0])
        lo, hi = indptr[start], indptr[stop]
        row_scale = np.repeat(scale[start:stop], np.diff(indptr[start : stop + 1]))
        data[lo:hi] = np.log1p(counts.data[lo:hi] * row_scale)
    X = sparse.csr_matrix((data, counts.indices.copy(), indptr.copy()), shape=counts.shape)
    return X, totals, target


# --- The expected pseudobulk -----------------------------------------------------------------------------------
# Nodes of the trapezoid rule in u = log t (see _expected_log1p_nb): the integrand decays like e^u on the left and
# like exp(-e^u) on the right, so [-36, 4] with step 0.2 reaches ~1e-9 accuracy for means up to ~1e6.
_U_STEP = 0.2
_T = np.exp(np.arange(-36.0, 4.0, _U_STEP))
_WEIGHT = np.exp(-_T) * _U_STEP
_SIZE_NODES = 9  # Gauss-Hermite nodes over the log size factor
# Steps of the interpolation grid in log mean, log dispersion and log a; below e^_LINEAR_BELOW, linear in the mean.
_GRID_STEPS = (0.1, 0.2, 0.1)
_LINEAR_BELOW = -12.0


def _expected_log1p_nb(mean, dispersion, scale) -> np.ndarray:
    """E[log1p(scale · c)] for c ~ NB(mean, dispersion), element-wise over broadcast arrays.

    Uses log1p(x) = ∫₀^∞ (1 − e^{−xt}) e^{−t} dt/t and the NB probability generating function
    E[z^c] = (1 + mean·φ·(1 − z))^{−1/φ}: with z = e^{−scale·t} and t = e^u the expectation is a smooth 1-d integral,
    which the trapezoid rule evaluates to high accuracy.

    Examples
    --------
    >>> from scipy import stats
    >>> c = np.arange(200); p = stats.nbinom.pmf(c, 1 / 0.3, 1 / (1 + 2.0 * 0.3))
    >>> bool(abs(_expected_log1p_nb(2.0, 0.3, 0.5) - np.sum(p * np.log1p(0.5 * c))) < 1e-8)
    True
    """
    mean, dispersion, scale = (np.asarray(a, dtype=np.float64)[..., None] for a in (mean, dispersion, scale))
    x = mean * dispersion * -np.expm1(-scale * _T)
    return np.sum(-np.expm1(-np.log1p(x) / dispersion) * _WEIGHT, axis=-1)


def _expected_log_normalized(mean, dispersion, a) -> np.ndarray:
    """E[log1p(c · T / total)] over cells, with total ≈ s·M, a = T / M, s log-normal and c ~ NB(s·mean, φ)."""
    z, w = np.polynomial.hermite_e.hermegauss(_SIZE_NODES)
    w = w / w.sum()
    mean, dispersion, a = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (mean, dispersion, a)))
    out = np.zeros(mean.shape)
    for s, weight in zip(np.exp(_SIZE_FACTOR_SD * z), w):
        out += weight * _expected_log1p_nb(s * mean, dispersion, a / s)
    return out


def _expected_pseudobulk(log_mean: np.ndarray, dispersion: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The pseudobulk each condition converges to as cells grow: conditions × genes.

    Exact quadrature for every (condition, gene) would cost ~10¹⁰ operations for the Replogle preset, so the
    expectation is tabulated on a grid of (log mean, log dispersion, log a) and interpolated trilinearly; the grid
    steps keep the interpolation error near 1e-4. Below a mean of e^-12 counts the expectation is proportional to the
    mean (only c = 1 matters), so it is scaled from the grid's lowest row instead of widening the grid.
    """
    from scipy.interpolate import RegularGridInterpolator

    def grid(lo: float, hi: float, step: float) -> np.ndarray:
        lo, hi = lo - 1e-6, hi + 1e-6
        return np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / step)) + 1))

    log_dispersion, log_a = np.log(dispersion), np.log(a)
    floor = min(_LINEAR_BELOW, float(log_mean.max()))
    axes = (
        grid(floor, float(log_mean.max()), _GRID_STEPS[0]),
        grid(float(log_dispersion.min()), float(log_dispersion.max()), _GRID_STEPS[1]),
        grid(float(log_a.min()), float(log_a.max()), _GRID_STEPS[2]),
    )
    mesh = [np.exp(m.ravel()) for m in np.meshgrid(*axes, indexing="ij")]
    table = np.empty(mesh[0].size)
    for start in range(0, table.size, 4096):
        part = slice(start, start + 4096)
        table[part] = _expected_log_normalized(mesh[0][part], mesh[1][part], mesh[2][part])
    interpolate = RegularGridInterpolator(axes, table.reshape([len(ax) for ax in axes]), method="linear")
    expected = np.empty_like(log_mean)
    for p in range(log_mean.shape[0]):
        clamped = np.maximum(log_mean[p], axes[0][0])
        points = np.column_stack([clamped, log_dispersion, np.full(clamped.size, log_a[p])])
        expected[p] = interpolate(points) * np.exp(log_mean[p] - clamped)
    return expected


def _assemble(X, counts, totals, cell_condition, conditions, symbols, gene_ids, params, truth) -> AnnData:
    import anndata

    condition = pd.Categorical.from_codes(cell_condition, categories=conditions)
    is_control = cell_condition == 0
    dose_val = np.where(is_control, "1", "1+1")
    cell_type = params["cell_type"]
    condition_name = [f"{cell_type}_{c}_{d}" for c, d in zip(conditions, ["1"] + ["1+1"] * (len(conditions) - 1))]
    obs = pd.DataFrame(
        {
            "condition": condition,
            "cell_type": pd.Categorical([cell_type] * cell_condition.size),
            "dose_val": pd.Categorical(dose_val, categories=["1", "1+1"]),
            "control": is_control.astype(np.int64),
            "condition_name": pd.Categorical.from_codes(cell_condition, categories=condition_name),
            "total_count": totals,
        },
        index=pd.Index([f"cell{i:07d}" for i in range(cell_condition.size)]),
    )
    var = pd.DataFrame({"gene_name": symbols}, index=pd.Index(gene_ids, name="gene_id"))
    uns = {"linpert_simulation": dict(params), "linpert_truth": truth}
    return anndata.AnnData(X=X, obs=obs, var=var, layers={"counts": counts}, uns=uns)
