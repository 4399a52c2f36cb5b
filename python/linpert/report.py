"""One self-contained HTML report of one or more benchmark runs: settings, tables and every figure.

The file has no external reference at all (figures are inline base64 PNGs, the style sheet is inline), so it opens
offline, can be mailed, and renders the same in ten years.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import platform
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pandas as pd

from . import _findings
from ._io import atomic_write

__all__ = ["write_report"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.5rem; border-bottom: 1px solid #eee; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.wide { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .8rem; margin: .6rem 0 1rem; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .25rem .7rem; text-align: right; }
th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
table.settings td { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #555; }
nav a { margin-right: 1rem; } .note { color: #666; font-size: .85rem; }
.findings { background: #f4f8fb; border-left: 4px solid #2c7fb8; padding: .5rem .9rem; margin: .8rem 0; }
.alert { border-left: 4px solid #c0392b; background: #fdecea; padding: .6rem .9rem; margin: 1rem 0; }
"""


def write_report(
    run_folders: str | os.PathLike | Iterable[str | os.PathLike],
    out_html: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Write one self-contained HTML report of benchmark runs (figures inline, no external URL), atomically.

    Per run: its settings (dataset, split, seeds, models, read-out genes, data fingerprint), the summary table, the
    timings, the forest table against the mean baseline, the interaction AUC table and class counts (double runs),
    and every figure of :func:`linpert.plot.figures`. A figure already written by
    :func:`linpert.plot.write_figures` and newer than the run's results is embedded as it is; others are drawn.

    Parameters
    ----------
    run_folders
        One run folder or several (the demo has two: ``double`` and ``single``).
    out_html
        The HTML file to write.
    title
        The report's title (default: the runs' datasets).

    Returns
    -------
    Path
        ``out_html``.

    Examples
    --------
    >>> from linpert.report import write_report
    >>> write_report(["demo/double", "demo/single"], "demo/report.html")  # doctest: +SKIP
    """
    from .plot import RunFolder

    if isinstance(run_folders, (str, os.PathLike)):
        run_folders = [run_folders]
    runs = [RunFolder(folder) for folder in run_folders]
    if not runs:
        raise ValueError("No run folders given: pass at least one folder written by linpert.benchmark.run.")
    out_html = Path(out_html)
    if out_html.exists() and not written_by_linpert(out_html):
        raise FileExistsError(f"{out_html} exists and linpert did not write it; linpert never overwrites your files. "
                              "Move it away or name another report file.")
    digest = sources_digest([run.root for run in runs])  # before reading: the report shows these very files
    title = title or "linpert benchmark: " + ", ".join(dict.fromkeys(run.label for run in runs))
    anchors = [f"run{i}" for i in range(len(runs))]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{_GENERATOR}"><meta name="linpert-sources" content="{digest}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<nav>" + "".join(f'<a href="#{a}">{_e(r.label)}</a>' for a, r in zip(anchors, runs)) + "</nav>",
        _environment(),
    ]
    for anchor, run in zip(anchors, runs):
        parts.append(_run_section(run, anchor))
    parts.append("</body></html>")
    atomic_write(out_html, "\n".join(parts))
    return out_html


_GENERATOR = "linpert"
#: What a run folder holds that its report does not show: the report itself, the lock, and atomic writes under way.
_NOT_SHOWN = ("report.html", "run.lock")


def _head(path: str | os.PathLike) -> bytes:
    """The start of an HTML file, where write_report puts its tags."""
    with open(path, "rb") as handle:
        return handle.read(4096)


def written_by_linpert(path: str | os.PathLike) -> bool:
    """Whether the HTML file at ``path`` is a report :func:`write_report` wrote (its generator tag says so)."""
    return f'<meta name="generator" content="{_GENERATOR}">'.encode() in _head(path)


def sources_digest(folders: Iterable[str | os.PathLike]) -> str:
    """A SHA-256 of every file a report of ``folders`` is drawn from (names and contents)."""
    import hashlib

    h = hashlib.sha256()
    for folder in folders:
        root = Path(folder)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            if relative.name in _NOT_SHOWN or relative.name.endswith(".tmp"):
                continue
            h.update(f"{root.name}/{relative.as_posix()}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def report_current(report: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether ``report`` is linpert's report of exactly what ``folders`` hold now (no table or figure changed)."""
    import re

    report = Path(report)
    if not report.is_file():
        return False
    found = re.search(rb'<meta name="linpert-sources" content="([0-9a-f]{64})">', _head(report))
    return found is not None and found.group(1).decode() == sources_digest(folders)


# --------------------------------------------------------------------------------------------------- sections
def _run_section(run, anchor: str) -> str:
    from .plot import CAPTIONS, display_name

    out = [f'<h2 id="{anchor}">{_e(run.label)}</h2>']
    if run.interaction_note:
        out.append(f'<p class="alert"><strong>Note:</strong> {_e(run.interaction_note)}</p>')
    out.append(_paragraph(_findings.prediction_findings(run), "findings"))
    out += ["<h3>Settings</h3>", _settings(run)]
    summary = run.summary.copy()
    summary["model"] = summary["model"].map(display_name)
    out += ["<h3>Summary</h3>",
            '<p class="note">Per model over the scored perturbations and seeds: <code>l2</code>, the Euclidean '
            "distance between predicted and observed expression over the read-out genes (lower is better); "
            "<code>pearson_delta</code>, the correlation of predicted and observed change from the control (higher "
            "is better; undefined for no change, which predicts no change); <code>unscored</code>, perturbations a "
            "model could not predict.</p>", _table(summary.drop(columns=["dataset", "split"], errors="ignore"))]
    if run.restriction.get("n_dropped"):
        r = run.restriction
        out.append(f'<p class="note">Scored only perturbations every model could predict: {r["n_dropped"]} of '
                   f'{r["n_scored"]} left out ({_e(", ".join(f"{k}: {v}" for k, v in r["reasons"].items()))}).</p>')
    from .metrics._registry import beyond_the_paper

    card = run.scorecard
    if beyond_the_paper(card):
        card = card.assign(model=card["model"].map(display_name))
        best = [f"{m}: {b}" for m, b in zip(card["model"], card.get("best_in", pd.Series(dtype=str)).fillna(""))
                if b]
        out += ["<h3>Scorecard: every metric, the paper's and the field's</h3>",
                '<p class="note">Mean per model over perturbations and seeds. Discrimination (l1, l2, cosine): '
                "cell-eval's normalised rank of the true perturbation among all observed ones (1 best, 0.5 chance); "
                "pearson_delta_perturbed and centroid_accuracy: Systema's, against the training perturbations' mean; "
                "mae, mse: mean absolute and squared error per gene; de_overlap: the share of the observed DE genes "
                "among the predicted top genes (from the cells).</p>",
                _table(card.drop(columns=["dataset", "split", "best_in"], errors="ignore")),
                _paragraph([f"Best per metric: {'; '.join(best)}."] if best else [], "note")]
    calibrated = run.calibrated
    if calibrated is not None:
        wide = calibrated.assign(value=[f"{m:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(m) else "n/a" for m, lo, hi in
                                        zip(calibrated["scaled"], calibrated["lower"], calibrated["upper"])])
        wide = wide.pivot(index="model", columns="metric", values="value").reset_index().rename_axis(columns=None)
        out += ["<h3>Calibrated scores</h3>",
                '<p class="note">0: the reference baseline (mean for singles, additive for doubles); 1: the replicate '
                "ceiling, one random half of each perturbation's cells predicting the other. Mean over perturbations "
                "with a 95 % bootstrap interval.</p>", _paragraph(_findings.calibration_findings(run), "findings"),
                _table(wide.assign(model=wide["model"].map(display_name)))]
    else:
        out.append('<p class="note">Calibrated scores need the cells the pseudobulk came from (run from a cell-level '
                   "file, or pass cells= to linpert.benchmark.run).</p>")
    out += _published_section(run)
    if run.timings is not None and len(run.timings):
        timings = run.timings.copy()
        timings["model"] = timings["model"].map(display_name)
        out += ["<h3>Timings (per seed)</h3>", _table(timings.drop(columns=["dataset", "split"], errors="ignore"))]
    if run.forest is not None and len(run.forest):
        forest = run.forest.copy()
        forest["model"] = forest["model"].map(display_name)
        out += ["<h3>L2 ratio to the mean baseline (bootstrap mean, 95 % interval)</h3>", _table(forest)]
    auc = run.interaction_table("auc_summary")
    if auc is not None:
        wide = auc.assign(value=[f"{m:.3f} ± {s:.3f}" for m, s in zip(auc["mean"], auc["se"])])
        wide = wide.pivot(index="model", columns="metric", values="value").reset_index().rename_axis(columns=None)
        wide["model"] = wide["model"].map(display_name)
        wide = wide.rename(columns={"auprc": "AUPRC (mean ± SE)", "roc_auc": "ROC AUC (mean ± SE)"})
        out += ["<h3>Finding genetic interactions</h3>", _paragraph(_findings.interaction_findings(run), "findings"),
                _table(wide)]
        if run.no_interactions:
            names = ", ".join(display_name(m) for m in run.no_interactions)
            out.append(f'<p class="note">{_e(names)}: predicts no interactions. Its every prediction equals the '
                       "additive expectation (to rounding), so it is not ranked, has no predicted classes and no "
                       "AUPRC or ROC AUC; the paper leaves it out of this analysis too.</p>")
        calls = run.interaction_table("calls")
        counts = calls["class"].value_counts().rename_axis("class").reset_index(name="pairs")
        null = run.null or {}
        out.append(f'<p class="note">Observed calls: {int(calls["interaction"].sum()):,} interactions of '
                   f'{len(calls):,} (double, gene) pairs; thresholds {null.get("lower", float("nan")):.3g} and '
                   f'{null.get("upper", float("nan")):.3g}.</p>')
        out.append(_table(counts))
        out.append('<p class="note">The classes (the paper\'s Methods): where both singles change the gene in the '
                   "same direction, <em>buffering</em> if the double's change lies between 0 and the additive "
                   "expectation, <em>synergy</em> if it exceeds it, <em>opposite</em> if its sign differs from the "
                   "singles'; <em>other</em> where the two singles change the gene in opposite directions; "
                   "<em>additive</em> where the deviation is within the locfdr thresholds.</p>")
        out.append(_paragraph(_findings.warning_explanations(run), "alert"))
    out.append("<h3>Figures</h3>")
    for name, png in _figure_pngs(run):
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<figure id="{anchor}-{name}"><img alt="{_e(name)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_e(CAPTIONS.get(name, name))}</figcaption></figure>")
    return "\n".join(out)


def _published_section(run) -> list[str]:
    """The paper's published models, in a table of their own (never mixed with the run's), and the run's fidelity."""
    from .plot import display_name
    from .published import CITATION

    summary = run.published("summary")
    if summary is None:
        return []
    summary = summary.assign(model=summary["model"].map(display_name))
    out = ["<h3>Published results (not run here)</h3>",
           f'<p class="note">{_e(CITATION)} Read with <code>linpert.published.results()</code>.</p>',
           _table(summary.drop(columns=["dataset", "split", "source"], errors="ignore"))]
    fidelity = run.published("fidelity")
    if fidelity is not None:
        out += ["<p>Fidelity: the largest difference between this run's per-perturbation L2 and the published one, "
                "per model the run shares with the paper.</p>", _table(fidelity.assign(
                    model=fidelity["model"].map(display_name)))]
    return out


def _settings(run) -> str:
    config = run.config
    seeds = sorted(int(s) for s in run.results["seed"].unique())
    rows = [
        ("dataset", config.get("dataset")),
        ("split", config.get("split")),
        ("seeds", ", ".join(map(str, seeds))),
        ("read-out genes (n_genes)", config.get("n_genes")),
        ("data fingerprint", config.get("data")),
        ("run format", config.get("format")),
        ("scored rows", len(run.results)),
        ("folder", str(run.root.resolve())),
    ]
    dropped = config.get("dropped_conditions")
    if dropped:
        rows.append(("conditions dropped on loading", f"{len(dropped['names'])}, {dropped['reason']}: "
                                                      f"{', '.join(dropped['names'])}"))
    rows += [(f"model {label}", _public_spec(spec)) for label, spec in config.get("models", {}).items()]
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="settings">{body}</table>'


def _environment() -> str:
    from ._config import __version__

    versions = {"python": platform.python_version(), "linpert": __version__}
    for package in ("numpy", "pandas", "anndata", "scipy", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    text = ", ".join(f"{k} {v}" for k, v in versions.items())
    return f'<p class="note">Report written {_e(stamp)} with {_e(text)}.</p>'


def _figure_pngs(run):
    """``(name, PNG bytes)`` per figure: the stored PNG when current, else drawn now (never written to the run)."""
    from .plot import figure_bytes, figure_names, figures

    stamp = (run.root / "results.parquet").stat().st_mtime
    drawn = {}
    names = figure_names(run)
    missing = [n for n in names if not _current(run.root / "figures" / f"{n}.png", stamp)]
    for name, fig in figures(run, names=missing):
        drawn[name] = figure_bytes(fig, "png", dpi=110)
    for name in names:
        if name in drawn:
            yield name, drawn[name]
        elif name not in missing:
            yield name, (run.root / "figures" / f"{name}.png").read_bytes()


def _current(path: Path, stamp: float) -> bool:
    return path.is_file() and path.stat().st_mtime >= stamp


def _public_spec(spec: str) -> str:
    """A model's recorded identity as a user writes it: ``LinearModel(n_components=10, ...)``, not the private
    module path and JSON of ``linpert.models._linear.LinearModel({"n_components": 10, ...})``."""
    match = re.fullmatch(r"linpert\.[\w.]*\.(\w+)\((\{.*\})\)", str(spec), flags=re.DOTALL)
    if not match:
        return str(spec)
    try:
        params = json.loads(match.group(2))
    except ValueError:
        return str(spec)
    return f"{match.group(1)}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _paragraph(sentences: list[str], kind: str) -> str:
    return f'<p class="{kind}">{_e(" ".join(sentences))}</p>' if sentences else ""


def _table(frame: pd.DataFrame) -> str:
    frame = frame.rename(columns=lambda c: str(c).replace("_", " "))  # long names wrap at the spaces
    html_table = frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}", na_rep="–", escape=True)
    return f"<div class=\"wide\">{html_table}</div>"


def _e(value) -> str:
    return html.escape(str(value), quote=True)
