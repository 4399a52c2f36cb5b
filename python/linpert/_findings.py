"""The report's findings: a few sentences per section, written from a run's own numbers.

Each function takes a :class:`linpert.plot.RunFolder` and returns plain sentences (the report escapes them), or an
empty list where the run has nothing to say on that subject. Every number comes from the run's tables; the paper is
quoted only for what it published.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

__all__ = ["calibration_findings", "interaction_findings", "prediction_findings", "warning_explanations"]

#: The baseline each split is judged against: the paper's hardest simple baseline for that task.
REFERENCE = {"double": "additive", "simulation": "mean"}
#: What the paper found on each task (Ahlmann-Eltze, Huber & Anders, Nature Methods 2025).
PAPER = {
    "double": "In the paper, every deep-learning model (GEARS, CPA, scGPT, scFoundation, Geneformer, UCE, scBERT) "
              "had a prediction error substantially higher than the additive baseline on Norman's double "
              "perturbations (Fig. 1a).",
    "simulation": "In the paper, no deep-learning model consistently outperformed the mean of the training "
                  "perturbations or the linear model on unseen single perturbations (Fig. 2a).",
}
_BASELINES = {"no_change", "additive", "mean", "linear"}
_BOOTSTRAP = 2000


def prediction_findings(run) -> list[str]:
    """Which model predicts best by mean L2, against the split's reference baseline, and beside the paper."""
    from .plot import display_name

    results, split = run.results, run.config.get("split")
    means = results.groupby("model")["l2"].mean().dropna().sort_values()
    if means.empty:
        return []
    best = means.index[0]
    scored = results[results["model"] == best]
    out = [f"{_capital(display_name(best))} predicts best: mean L2 {means[best]:.3g} over the "
           f"{run.config.get('n_genes')} read-out genes ({len(scored):,} predictions on {scored['seed'].nunique()} "
           "seeds; lower is better)."]
    reference = REFERENCE.get(split)
    other = (best if best != reference else means.index[1]) if reference in means.index and len(means) > 1 else None
    paired = _paired_ratio(results, other, reference) if other else None
    if paired:  # None where the two share no scored perturbation
        ratio, lo, hi = paired
        baseline = display_name(reference).lower()
        verdict = (f"Its L2 is {ratio:.2f} times the {baseline} baseline's" if other == best else
                   f"No model beats the {baseline} baseline; the next, {display_name(other)}, has {ratio:.2f} times "
                   "its L2")
        out.append(f"{verdict} (95 % bootstrap interval over perturbations {lo:.2f}–{hi:.2f}).")
    if split in PAPER:
        out.append(PAPER[split] + _against_published(run))
    return out


def calibration_findings(run) -> list[str]:
    """How close each model comes to the replicate ceiling, and why some scores are missing or above 1."""
    from .plot import display_name

    table = run.calibrated
    if table is None or table.empty:
        return []
    out = []
    l2 = table[(table["metric"] == "l2") & table["scaled"].notna()].sort_values("scaled", ascending=False)
    if len(l2):
        top = l2.iloc[0]
        out.append(f"On L2, {display_name(top['model'])} closes {top['scaled']:.0%} of the gap between the reference "
                   f"baseline (0) and the replicate ceiling (1) (95 % interval {top['lower']:.2f} to "
                   f"{top['upper']:.2f}).")
    missing = table[table["scaled"].isna()]
    if len(missing):
        reasons = missing["reason"].fillna("no reason recorded").value_counts()
        listed = "; ".join(f"{reason} ({count})" for reason, count in reasons.items())
        out.append(f"{len(missing)} of {len(table)} scores are undefined, shown as n/a: {listed}.")
    above = table[table["scaled"] > 1]
    if len(above):
        names = ", ".join(f"{display_name(m)} on {metric} ({v:.2f})"
                          for m, metric, v in above[["model", "metric", "scaled"]].itertuples(index=False))
        out.append(f"Above 1 means better than the ceiling, which is half of each perturbation's cells and so noisier "
                   f"than the whole: {names}.")
    return out


def interaction_findings(run) -> list[str]:
    """How many interactions the data hold, how well the best model ranks them against chance, and what the paper's
    AUPRC is."""
    from .plot import display_name

    calls, auc = run.interaction_table("calls"), run.interaction_table("auc_summary")
    if calls is None or auc is None:
        return []
    out = [f"The data hold {int(calls['interaction'].sum()):,} interactions among {len(calls):,} (double, gene) pairs "
           f"({calls['interaction'].mean():.1%})."]
    wide = auc.pivot(index="model", columns="metric", values="mean")
    se = auc.pivot(index="model", columns="metric", values="se")
    if "roc_auc" in wide and wide["roc_auc"].notna().any():
        top = wide["roc_auc"].idxmax()
        out.append(f"{_capital(display_name(top))} ranks them best: ROC AUC {wide.loc[top, 'roc_auc']:.3f} ± "
                   f"{se.loc[top, 'roc_auc']:.1g} (mean ± SE over seeds; 0.5 is chance), AUPRC "
                   f"{wide.loc[top, 'auprc']:.3f}.")
    out.append("The AUPRC is the paper's: the curve's points are sorted by precision before the trapezoid sum, so a "
               "random ranking does not score the share of interactions on it (mostly it scores near 0), and a flat "
               "precision-recall curve can have a small area; compare models with each other. In the paper, no model found interactions "
               "better than the no-change baseline (Fig. 1c, Extended Data Fig. 4).")
    return out


def warning_explanations(run) -> list[str]:
    """What each warning of the interaction null's fit means, and what to do about it."""
    path = run.root / "interactions" / "null.json"
    said = json.loads(path.read_text()).get("warnings") or [] if path.is_file() else []
    out = []
    for warning in said:
        text = str(warning).strip()
        if text.startswith("f(z) misfit"):
            out.append(f"locfdr warned \u201c{text}\u201d: its spline fit (df = 7, the paper's setting, kept here) "
                       "of the deviations' histogram misses some bins. The null's centre and width are fitted to the "
                       "central deviations alone, but the local fdr, and so the interaction thresholds, divide by "
                       "that fit. To see how much it matters, rerun with --locfdr df=10 and compare the thresholds "
                       "in interactions/null.json.")
        else:
            out.append(f"locfdr warned \u201c{text}\u201d (see R's locfdr documentation).")
    return out


def _capital(name: str) -> str:
    """A model's name to open a sentence with (a label such as ``transfer`` is the user's spelling)."""
    return name[:1].upper() + name[1:]


def _paired_ratio(results: pd.DataFrame, model: str, reference: str) -> tuple[float, float, float] | None:
    """Mean L2 of ``model`` over the reference's, on the perturbations both predicted, with a 95 % bootstrap
    interval (perturbations and seeds resampled together; seed 0, so the report is the same every time)."""
    keys = ["seed", "perturbation"]
    pair = (results[results["model"] == model][keys + ["l2"]]
            .merge(results[results["model"] == reference][keys + ["l2"]], on=keys, suffixes=("", "_ref")).dropna())
    a, b = pair["l2"].to_numpy(), pair["l2_ref"].to_numpy()
    if not len(a):
        return None
    draws = np.random.default_rng(0).integers(0, len(a), size=(_BOOTSTRAP, len(a)))
    ratios = a[draws].mean(axis=1) / b[draws].mean(axis=1)
    return float(a.mean() / b.mean()), *(float(q) for q in np.quantile(ratios, [0.025, 0.975]))


def _against_published(run) -> str:
    """The paper's published numbers on this dataset, and how closely the run reproduces them."""
    from .plot import display_name

    summary = run.published("summary")
    if summary is None or summary.empty:
        return (" This run's data are not the paper's, so compare the ranking, not the numbers.")
    means = summary.set_index("model")["l2_mean"].dropna()
    deep = means[[m for m in means.index if m not in _BASELINES]].sort_values()
    baselines = ", ".join(f"{display_name(m)} {v:.3g}" for m, v in means.items() if m in _BASELINES)
    parts = [f" Published mean L2 on this dataset: {baselines}"]
    if len(deep):
        parts.append(f"; best deep-learning model {display_name(deep.index[0])} {deep.iloc[0]:.3g}")
    fidelity = run.published("fidelity")
    if fidelity is not None and len(fidelity):
        worst = float(fidelity["max_abs_l2_diff"].max())
        parts.append(f". This run reproduces the published per-perturbation L2 of "
                     f"{', '.join(map(display_name, fidelity['model']))} to within {worst:.1e}")
    return "".join(parts) + "."
