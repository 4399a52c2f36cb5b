"""linpert score: predicted and observed cells in cell-eval's format, judged beside linpert's references."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

from linpert.cli import main
from linpert.metrics import scorecard
from linpert.submission import score_submission


def cells(seed=0, noise=0.0, n_perts=8, per=20, g=50):
    """Cells with a ``target_gene`` column: control cells and ``per`` cells of each perturbation."""
    truth, rng = np.random.default_rng(42), np.random.default_rng(seed)  # the same biology, other cells
    genes = [f"G{i}" for i in range(g)]
    effects = truth.normal(0, 1, (n_perts, g)) * (truth.random((n_perts, g)) < 0.3)
    labels = ["non-targeting"] * per + [genes[p] for p in range(n_perts) for _ in range(per)]
    base = truth.gamma(2, 0.5, g)
    X = np.vstack([base + (0 if lab == "non-targeting" else effects[genes.index(lab)]) for lab in labels])
    X = X + rng.normal(0, 0.3 + noise, X.shape)
    return anndata.AnnData(X, obs=pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))]),
                           var=pd.DataFrame(index=genes))


def test_a_submission_is_scored_beside_the_references(tmp_path):
    real, good = cells(seed=0), cells(seed=1)  # the same effects, other noise: a good prediction
    table = score_submission(good, real)
    card = scorecard(table).set_index("model")
    assert set(card.index) == {"submission", "no_change", "observed_mean", "replicate_ceiling"}
    assert card.at["submission", "discrimination_l1"] > card.at["observed_mean", "discrimination_l1"]
    assert card.at["submission", "l2"] < card.at["no_change", "l2"]
    assert set(table["perturbation"]) == {f"G{i}+ctrl" for i in range(8)}


def test_the_cli_scores_files_and_never_overwrites(tmp_path, capsys):
    cells(seed=0).write_h5ad(tmp_path / "real.h5ad")
    cells(seed=1).write_h5ad(tmp_path / "pred.h5ad")
    out = tmp_path / "scores.csv"
    assert main(["score", str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "submission" in printed and "observed_mean" in printed and out.is_file()
    assert main(["score", str(tmp_path / "pred.h5ad"), str(tmp_path / "real.h5ad"), "--out", str(out)]) == 2
    assert "exists; linpert does not overwrite" in capsys.readouterr().err


def test_bad_submissions_get_clear_errors(tmp_path, capsys):
    real = cells()
    partial = real[real.obs["target_gene"] != "G3"].copy()
    with pytest.raises(ValueError, match=r"1 perturbations have no predicted cells \(e.g. G3\+ctrl\)"):
        score_submission(partial, real)
    with pytest.raises(KeyError, match="have no obs column 'gene'"):
        score_submission(real, real, perturbation_key="gene")
    with pytest.raises(ValueError, match="no control cells labelled 'ctrl-like'"):
        score_submission(real, real, control="ctrl-like")
    real.write_h5ad(tmp_path / "real.h5ad")
    assert main(["score", str(tmp_path / "missing.h5ad"), str(tmp_path / "real.h5ad")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_the_replicate_ceiling_calibrates_every_metric():
    from linpert.metrics import replicate_ceiling
    from linpert.submission import calibrated

    real, good = cells(seed=0, per=40), cells(seed=1, per=40)
    table = score_submission(good, real)
    ceiling = table[table["model"] == "replicate_ceiling"].set_index("perturbation")
    submission = table[table["model"] == "submission"].set_index("perturbation")
    # half the cells predict the other half: worse than a prediction from as many cells as the observation, far better
    # than knowing only the average effect
    assert (ceiling["pearson_delta"] > 0.5).all() and ceiling["discrimination_l1"].mean() > 0.9
    scaled = calibrated(table).set_index(["model", "metric"])
    assert scaled.at[("observed_mean", "l2"), "scaled"] == 0  # the reference is 0 by construction
    assert scaled.at[("submission", "l2"), "above_0"] and scaled.at[("submission", "l2"), "lower"] > 0
    assert scaled.at[("submission", "pearson_delta"), "scaled"] > 0.5
    assert submission["l2"].mean() < ceiling["l2"].mean() * 1.5
    # too few cells to split: NaN with the reason
    few = cells(seed=0, per=3)
    assert replicate_ceiling(_relabel(few), n_splits=2)["reason"].str.startswith("fewer than 4 cells").all()


def _relabel(adata):
    adata = adata.copy()
    labels = adata.obs["target_gene"].astype(str)
    adata.obs["condition"] = np.where(labels == "non-targeting", "ctrl", labels + "+ctrl")
    return adata
