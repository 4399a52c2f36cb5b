"""linpert.report: one self-contained HTML file with every figure, the tables and the settings of each run."""

from __future__ import annotations

import base64
import json
import warnings
from html.parser import HTMLParser

import pandas as pd
import pytest
from conftest import make_pseudobulk

from linpert import benchmark, plot
from linpert.report import write_report


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.run(make_pseudobulk(n_genes=200, n_singles=12, n_doubles=30, seed=0), split="double",
                      seeds=[1, 2], models=["no_change", "additive", "linear"], out=root / "double", n_genes=131,
                      progress=False, interactions=True)
        benchmark.run(make_pseudobulk(n_genes=200, n_singles=40, n_doubles=0, seed=1), split="simulation",
                      seeds=[1, 2], models=["mean", "linear"], out=root / "single", n_genes=131, progress=False)
    return [root / "double", root / "single"]


class _Resources(HTMLParser):
    """Every attribute that can load something, and every figure id."""

    def __init__(self):
        super().__init__()
        self.references, self.images, self.figures, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href", "data", "action", "poster"):
            if attrs.get(key):
                self.references.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "figure":
            self.figures.append(attrs["id"])


def test_report_embeds_every_figure_and_loads_nothing(folders, tmp_path):
    out = write_report(folders, tmp_path / "report.html", title="Tiny runs")
    text = out.read_text()
    parser = _Resources()
    parser.feed(text)
    parser.close()
    assert "http://" not in text and "https://" not in text
    assert "script" not in parser.tags and "link" not in parser.tags
    for reference in parser.references:
        assert reference.startswith(("#", "data:image/png;base64,")), reference
    for src in parser.images:
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    expected = [f"run{i}-{name}" for i, folder in enumerate(folders) for name in plot.figure_names(folder)]
    assert parser.figures == expected
    assert "run0-tpr_fdp" in expected and "run1-forest" in expected
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # written atomically, no temp file left


def test_report_holds_the_settings_and_tables(folders, tmp_path):
    text = write_report(folders, tmp_path / "report.html").read_text()
    for folder in folders:
        config = json.loads((folder / "run.json").read_text())
        assert config["data"] in text
        summary = pd.read_csv(folder / "summary.csv")
        assert f"{summary['l2_mean'].iloc[0]:.4g}" in text
    auc = pd.read_csv(folders[0] / "interactions" / "auc_summary.csv").set_index(["model", "metric"])
    mean, se = auc.loc[("linear", "auprc"), ["mean", "se"]]
    assert f"{mean:.3f} ± {se:.3f}" in text
    forest = pd.read_csv(folders[1] / "forest.csv")
    assert f"{forest['mean'].iloc[0]:.4g}" in text
    assert "numpy" in text and "anndata" in text and "Linear model" in text


def test_report_reuses_current_figures(folders, tmp_path):
    plot.write_figures(folders[1], formats=("png",))
    stored = (folders[1] / "figures" / "forest.png").read_bytes()
    text = write_report(folders[1], tmp_path / "one.html").read_text()
    assert base64.b64encode(stored).decode() in text


def test_report_needs_a_run(tmp_path):
    with pytest.raises(ValueError, match="No run folders"):
        write_report([], tmp_path / "r.html")
    with pytest.raises(FileNotFoundError, match="not a finished linpert run folder"):
        write_report(tmp_path, tmp_path / "r.html")


def test_each_section_opens_with_findings_written_from_the_runs_own_numbers(folders, tmp_path):
    import html
    import re

    from linpert._findings import _paired_ratio

    text = html.unescape(write_report(folders, tmp_path / "report.html").read_text())
    findings = re.findall(r'<p class="findings">(.*?)</p>', text, flags=re.DOTALL)
    for folder, reference in zip(folders, ("additive", "mean")):
        results = pd.read_parquet(folder / "results.parquet")
        means = results.groupby("model")["l2"].mean().sort_values()
        best = means.index[0]
        said = next(f for f in findings if f"mean L2 {means[best]:.3g}" in f)
        assert plot.display_name(best)[:1].upper() in said[:1]  # the best model opens the sentence
        if best != reference:
            ratio, lo, hi = _paired_ratio(results, best, reference)
            assert lo <= ratio <= hi and f"{ratio:.2f} times the {reference} baseline's" in said
            assert f"{lo:.2f}–{hi:.2f}" in said
        assert "compare the ranking, not the numbers" in said  # simulated data: no published rows to compare to
    calls = pd.read_parquet(folders[0] / "interactions" / "calls.parquet")
    assert any(f"{int(calls['interaction'].sum()):,} interactions among {len(calls):,}" in f for f in findings)
    assert "the paper's: the curve's points are sorted by precision" in text  # why the AUPRC is not the rate
    assert "<th>metric</th>" not in text  # the pivots' column names are not a column
    assert "linpert.models._" not in text and "LinearModel(gene_embedding='pca'" in text  # public spellings
    assert "<em>other</em> where the two singles change the gene in opposite directions" in text


def test_the_report_explains_undefined_calibrated_scores_and_locfdrs_warnings(tmp_path):
    import html
    import re

    import linpert

    cells = linpert.datasets.simulate("norman", n_genes=300, n_singles=16, n_doubles=30, seed=4)
    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark.run(linpert.pseudobulk(path), split="double", seeds=[1, 2], out=tmp_path / "run", cells=str(path),
                      progress=False)
    text = html.unescape(write_report(tmp_path / "run", tmp_path / "report.html").read_text())
    calibrated = pd.read_csv(tmp_path / "run" / "calibrated.csv")
    undefined = calibrated[calibrated["scaled"].isna()]
    assert len(undefined) and "nan [nan, nan]" not in text and ">n/a<" in text
    assert f"{len(undefined)} of {len(calibrated)} scores are undefined" in text
    for reason, count in undefined["reason"].value_counts().items():
        assert f"{reason} ({count})" in text
    said = json.loads((tmp_path / "run" / "interactions" / "null.json").read_text())["warnings"]
    alerts = " ".join(re.findall(r'<p class="alert">(.*?)</p>', text, flags=re.DOTALL))
    assert said and all(warning.strip() in alerts for warning in said)
    assert "--locfdr df=10" in alerts
