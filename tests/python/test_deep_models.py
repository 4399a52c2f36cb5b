"""The deep-learning side of the comparison on the real libraries: CPA 0.8.8, scGPT and GEARS trained from scratch,
the foundation models' decoders, each through the same contract as the baselines, from Python and the command line.

The isolated environments are built on first use (a few GB each, about 3 minutes with a warm pip cache) and cached
in ``$LINPERT_DATA_DIR/envs``, so only the first run pays for them. Nothing here is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import check_model_contract

import linpert
from linpert.adapters import (
    CellFlowModel,
    ADAPTERS,
    CpaModel,
    GearsModel,
    GeneformerDecoder,
    ScBertDecoder,
    ScGptModel,
    StateModel,
    UceDecoder,
    geneformer_embedding,
    uce_embedding,
    write_geneformer_model,
    write_scbert_model,
    write_go_files,
    write_scgpt_checkpoint,
    write_uce_model,
)
from linpert.datasets import simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def screen(tmp_path_factory):
    """Simulated cells on disk, their pseudobulk, and a contract request: a held-out double, singles, NOVEL."""
    folder = tmp_path_factory.mktemp("screen")
    cells = simulate("norman", n_genes=60, n_singles=8, n_doubles=6, cells_per_condition=12, n_control_cells=60,
                     seed=0)
    path = folder / "cells.h5ad"
    cells.write_h5ad(path)
    bulk = linpert.pseudobulk(cells)
    singles = [c for c in bulk.obs_names if c.endswith("+ctrl")]
    doubles = [c for c in bulk.obs_names if c != "ctrl" and not c.endswith("+ctrl")]
    held_out, validation = doubles[0], doubles[1]
    train = bulk[[c for c in bulk.obs_names if c not in (held_out, validation)]].copy()
    g1, g2 = (s.removesuffix("+ctrl") for s in singles[:2])
    request = [held_out, f"ctrl+{g1}", "ctrl", "NOVEL+ctrl", f"{g2}+ctrl"]
    return {"path": str(path), "cells": cells, "bulk": bulk, "train": train, "request": request,
            "validation": [validation], "folder": folder}


@pytest.fixture(scope="module")
def scgpt_checkpoint(screen):
    return write_scgpt_checkpoint(screen["folder"] / "scgpt", list(screen["bulk"].var_names))


@pytest.fixture(scope="module")
def embeddings(screen):
    """Per-condition embeddings of the paper's perturbed inputs by UCE and Geneformer, run with their own code on
    small random models; scBERT's code is on no registry, so its decoder gets a random table of the same shape."""
    cells, symbols = screen["cells"], list(screen["bulk"].var_names)
    uce = uce_embedding(cells, write_uce_model(screen["folder"] / "uce", symbols), n_control_cells=10)
    geneformer = geneformer_embedding(cells, write_geneformer_model(screen["folder"] / "geneformer",
                                                                    list(cells.var_names)), n_control_cells=10)
    names = list(screen["bulk"].obs_names)
    scbert = pd.DataFrame(np.random.default_rng(0).normal(size=(len(names), 4)), index=names)
    return {"uce": uce, "geneformer": geneformer, "scbert": scbert}


#: A small STATE (its state_sm with a 64-wide, two-layer backbone), to train in seconds on a CPU.
SMALL_STATE = {"model.kwargs.hidden_dim": 64, "model.kwargs.transformer_backbone_kwargs.intermediate_size": 128,
               "model.kwargs.transformer_backbone_kwargs.num_hidden_layers": 2,
               "model.kwargs.transformer_backbone_kwargs.num_attention_heads": 4,
               "model.kwargs.transformer_backbone_kwargs.num_key_value_heads": 4,
               "model.kwargs.transformer_backbone_kwargs.head_dim": 16}


#: A small CellFlow (its velocity field 32 wide instead of 2,048), to train in seconds on a CPU.
SMALL_CELLFLOW = {"condition_embedding_dim": 16, "time_freqs": 16, "time_encoder_dims": [32, 32],
                  "hidden_dims": [32, 32], "decoder_dims": [32, 32]}


def _adapter(name: str, screen, checkpoint=None, embeddings=None):
    shared = {"cells": screen["path"], "validation": screen["validation"], "device": "cpu"}
    if name == "gears":
        go = write_go_files(list(screen["bulk"].var_names), screen["folder"] / "go", seed=1)
        return GearsModel(go_files=str(go), epochs=1, **shared)
    if name == "cpa":
        return CpaModel(max_epochs=3, **shared)
    if name == "state":
        return StateModel(overrides=SMALL_STATE, max_steps=30, val_freq=15, cell_set_len=8, **shared)
    if name == "cellflow":
        return CellFlowModel(cells=screen["path"], device="cpu", n_components=10, num_iterations=30, batch_size=64,
                             model=SMALL_CELLFLOW)
    if name == "scgpt":
        return ScGptModel(checkpoint=str(checkpoint), epochs=1, **shared)
    return {"geneformer": GeneformerDecoder, "uce": UceDecoder, "scbert": ScBertDecoder}[name](
        embedding=embeddings[name])


#: The paper's settings, each with its source (the scripts and tutorials its Methods name).
PAPER_SETTINGS = json.loads((Path(__file__).parent / "paper_settings.json").read_text())


def _values(section: dict) -> dict:
    return {key: value for key, value in section.items() if not key.startswith("_")}


def test_cpas_paper_preset_asks_for_every_setting_of_cpas_tutorial_and_linperts_for_its_own():
    spec, params = PAPER_SETTINGS["cpa"], CpaModel()._params()
    assert params["model_params"] == _values(spec["model_params"])
    assert params["trainer_params"] == _values(spec["trainer_params"])
    assert params["train"] == _values(spec["train"])
    assert params["valid_cells"] == spec["valid_cells"]["fraction"]
    assert params["target_sum"] == spec["output"]["target_sum"] and params["encoding"] == "tutorial"
    own = CpaModel(preset="linpert", trainer_params={"lr": 0.001}, max_epochs=7)._params()
    assert own["model_params"] == {"n_latent": 32, "recon_loss": "nb"} and own["trainer_params"] == {"lr": 0.001}
    assert (own["encoding"], own["valid_cells"], own["target_sum"], own["train"]["max_epochs"]) == ("gears", None,
                                                                                                    None, 7)
    with pytest.raises(ValueError, match="preset='tutorial'"):
        CpaModel(preset="tutorial")._params()


def test_cpa_is_given_exactly_its_tutorials_settings_and_encoding_under_the_paper_preset(screen):
    """Real CPA (two epochs): what CPA itself recorded, its model's hyper-parameters and its training plan's
    settings, equals the spec file's values; singles reach it as the tutorial writes them, validation is 15 % of the
    cells, and a held-out double is predicted."""
    spec = PAPER_SETTINGS["cpa"]
    model = CpaModel(cells=screen["path"], max_epochs=2, device="cpu").fit(screen["train"])
    passed = model.fit_report_["passed"]
    assert passed["model_params"] == _values(spec["model_params"])
    plan = _values(spec["trainer_params"])
    assert passed["trainer_params"] == plan, {k: v for k, v in passed["trainer_params"].items() if plan.get(k) != v}
    assert passed["train"] == {**_values(spec["train"]), "max_epochs": 2}
    assert {key: passed["setup"][key] for key in _values(spec["setup_anndata"])} == _values(spec["setup_anndata"])
    singles = {c.removesuffix("+ctrl") for c in screen["train"].obs_names if c.endswith("+ctrl")}
    assert singles <= set(passed["labels"]) and not any(label.endswith("+ctrl") for label in passed["labels"])
    assert passed["doses"] == ["1", "1+1"] and 0.08 < passed["valid_cells"] / passed["cells"] < 0.22
    held_out = screen["request"][0]
    assert np.isfinite(model.predict([held_out]).X).all()


# scFoundation needs its GEARS fork's code and weights, which no registry serves: the adapter is run on a clone by
# benchmarks/scfoundation_fork.py instead.
CONTRACT = sorted(set(ADAPTERS) - {"scfoundation"})


def test_every_adapter_but_scfoundation_is_covered_by_the_contract_test():
    assert set(CONTRACT) | {"scfoundation"} == set(ADAPTERS)


@pytest.mark.parametrize("name", CONTRACT)
def test_adapter_contract(name, screen, request):
    checkpoint = request.getfixturevalue("scgpt_checkpoint") if name == "scgpt" else None
    tables = request.getfixturevalue("embeddings") if name in ("geneformer", "uce", "scbert") else None
    model = _adapter(name, screen, checkpoint, tables)
    assert linpert.models.make_model(name, **model.get_params()).get_params() == model.get_params()
    check_model_contract(model, screen["train"], screen["request"], predicts_unseen=False)
    pred = model.predict(screen["request"])
    assert not pred.obs["reason"].iloc[[0, 1, 2, 4]].any(), pred.obs["reason"]
    if name in ("cpa", "scgpt", "gears", "state"):
        # the worker trained on the training conditions and validated on the given ones, never the held-out double
        assert model.val_conditions_ == screen["validation"]
        assert screen["request"][0] not in model.train_conditions_
        assert model.versions_["python"] == "%d.%d.%d" % sys.version_info[:3]


def test_cpa_scgpt_and_state_stand_beside_additive_from_the_command_line(screen, scgpt_checkpoint, tmp_path):
    """The issue's command, on a fresh cache: environments built on first use; CPA, scGPT and STATE (the field's
    current model, its small configuration for 20 steps) in the tables, each with its version and preset."""
    out = tmp_path / "run"
    models = (f"additive,cpa(max_epochs=3),scgpt(checkpoint={scgpt_checkpoint},epochs=1),"
              "state(max_steps=20,cell_set_len=8)")
    done = subprocess.run(
        [sys.executable, "-m", "linpert.cli", "run", screen["path"], "--split", "double", "--seeds", "1",
         "--models", models, "--out", str(out), "--preset", "paper"],  # a user's file: 'auto' would be linpert's
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert set(results["model"]) == {"additive", "cpa", "scgpt", "state"}
    for model, part in results.groupby("model"):
        assert np.isfinite(part["l2"]).all(), model
    timings = pd.read_csv(out / "timings.csv").set_index("model")
    assert "cpa-tools 0.8.8" in timings.at["cpa", "environment"]
    assert "scgpt 0.2." in timings.at["scgpt", "environment"]
    assert "arc-state 0.11.1" in timings.at["state", "environment"]
    assert pd.isna(timings.at["additive", "environment"]) and timings.at["cpa", "preset"] == "paper"
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["model"]) == {"additive", "cpa", "scgpt", "state"}
    report = (out / "report.html").read_text()
    assert "CpaModel(" in report and "preset=&#x27;paper&#x27;" in report and "StateModel(" in report  # settings
    assert "cpa-tools 0.8.8" in report and "arc-state 0.11.1" in report  # and the versions it ran with
    assert any((out / "figures").glob("*.png"))


def test_scgpt_checkpoint_writer_uses_the_real_format(scgpt_checkpoint, screen):
    vocab = json.loads((scgpt_checkpoint / "vocab.json").read_text())
    args = json.loads((scgpt_checkpoint / "args.json").read_text())
    assert list(vocab)[:3] == ["<pad>", "<cls>", "<eoc>"] and set(screen["bulk"].var_names) <= set(vocab)
    assert {"embsize", "nheads", "d_hid", "nlayers", "n_layers_cls", "dropout", "pad_token", "pad_value"} <= set(args)
    # the weights are a state dict of scGPT's TransformerModel: read them in the adapter's own environment
    python = ScGptModel()._launcher().python
    keys = subprocess.run(
        [python, "-c", f"import torch; print(sorted(torch.load({str(scgpt_checkpoint / 'best_model.pt')!r})))"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "encoder.embedding.weight" in keys and "transformer_encoder.layers.0.self_attn.in_proj_weight" in keys
    with pytest.raises(FileExistsError, match="already holds args.json, vocab.json, best_model.pt"):
        write_scgpt_checkpoint(scgpt_checkpoint, ["A"])


def test_uce_and_geneformer_embed_the_perturbed_inputs(embeddings, screen):
    conditions = set(screen["bulk"].obs_names)
    for name in ("uce", "geneformer"):
        table = embeddings[name]
        assert set(table.index) == conditions, name  # every condition, ctrl included
        assert np.isfinite(table.to_numpy()).all()
        # the inputs differ by condition, so the embeddings do (a constant embedding would decode to the mean)
        assert table.drop_duplicates().shape[0] == len(table), name
    assert embeddings["uce"].shape[1] == 32 and embeddings["geneformer"].shape[1] == 64


def test_uce_embeds_the_papers_inputs_in_fit_as_uce_embedding_does(embeddings, screen):
    model = UceDecoder(model_files=str(screen["folder"] / "uce"), cells=screen["path"], n_control_cells=10,
                       device="cpu").fit(screen["train"])
    assert model.preset == "paper" and model.versions_["uce-model"] == "0.1.4"
    table = model.embedding_.rename_axis(None)
    np.testing.assert_allclose(table.to_numpy(), embeddings["uce"].loc[table.index].to_numpy(), rtol=1e-6)
    assert np.isfinite(model.predict(screen["request"][:2]).X).all()


def test_the_random_models_use_the_real_folder_layouts(embeddings, screen):
    uce, geneformer = screen["folder"] / "uce", screen["folder"] / "geneformer"
    assert {p.name for p in uce.iterdir()} >= {"species_chrom.csv", "species_offsets.pkl", "all_tokens.torch",
                                                 "protein_embeddings", "model.torch"}
    assert len(list((uce / "protein_embeddings").glob("*_ESM2.pt"))) == 8
    assert {p.name for p in geneformer.iterdir()} >= {"config.json", "token_dictionary.pkl",
                                                       "gene_median_dictionary.pkl"}
    assert any(p.suffix in (".safetensors", ".bin") for p in geneformer.iterdir())
    with pytest.raises(FileNotFoundError, match="lacks species_chrom.csv"):
        uce_embedding(screen["cells"], screen["folder"])
    with pytest.raises(FileNotFoundError, match="lacks config.json"):
        geneformer_embedding(screen["cells"], screen["folder"])


#: scBERT's repository at the paper's commit 262fd4b9. Its code is on no package registry, so CI (which reaches only
#: the registries) has no copy: the test runs where LINPERT_SCBERT_CODE names a clone.
SCBERT_CODE = os.environ.get("LINPERT_SCBERT_CODE")


@pytest.mark.skipif(not SCBERT_CODE, reason="LINPERT_SCBERT_CODE is unset: no clone of scBERT's repository here")
def test_scbert_is_fine_tuned_on_the_training_labels_and_embedded_with_its_own_code(screen, tmp_path):
    folder = write_scbert_model(tmp_path / "scbert", list(screen["bulk"].var_names), code=SCBERT_CODE)
    model = ScBertDecoder(model=str(folder), code=SCBERT_CODE, cells=screen["path"], epochs=2, grad_acc=2,
                          n_control_cells=10, device="cpu").fit(screen["train"])
    assert list(model.embedding_.index) == sorted(screen["bulk"].obs_names)  # every condition, held-out ones too
    assert model.embedding_.shape[1] == 200 and np.isfinite(model.embedding_.to_numpy()).all()
    assert model.embedding_.loc["ctrl"].std() > 0
    prediction = model.predict(screen["request"][:2])
    assert np.isfinite(prediction.X).all() and list(prediction.obs["reason"]) == ["", ""]


#: Geneformer's repository at a 0.1.0 commit (the paper's version), which no registry serves either.
GENEFORMER_CODE = os.environ.get("LINPERT_GENEFORMER_CODE")


@pytest.mark.skipif(not GENEFORMER_CODE, reason="LINPERT_GENEFORMER_CODE is unset: no clone of Geneformer here")
def test_geneformer_is_fine_tuned_and_perturbed_in_silico_with_its_own_code(screen, tmp_path):
    cells = screen["cells"]
    folder = write_geneformer_model(tmp_path / "geneformer", list(cells.var_names))
    model = GeneformerDecoder(model=str(folder), code=GENEFORMER_CODE, cells=screen["path"], n_control_cells=10,
                              epochs=1, device="cpu").fit(screen["train"])
    report = model.embedding_.attrs["worker"]
    assert report["classes"] == len(screen["train"]) and report["train_seconds"] > 0  # one class per condition
    assert list(model.embedding_.index) == sorted(screen["bulk"].obs_names)
    assert model.embedding_.shape[1] == 64 and np.isfinite(model.embedding_.to_numpy()).all()
    held_out, single = screen["request"][0], screen["request"][1]
    assert not np.allclose(model.embedding_.loc[held_out], model.embedding_.loc["ctrl"])  # the targets moved
    prediction = model.predict([held_out, single])
    assert np.isfinite(prediction.X).all() and list(prediction.obs["reason"]) == ["", ""]


#: The GEARS folder of a clone of scFoundation's repository (its GEARS 0.0.2 fork), on no registry.
SCFOUNDATION_GEARS = os.environ.get("LINPERT_SCFOUNDATION_GEARS")


@pytest.mark.skipif(not SCFOUNDATION_GEARS, reason="LINPERT_SCFOUNDATION_GEARS is unset: no clone of scFoundation")
def test_gears_runs_from_scfoundations_fork_as_the_paper_ran_it_on_norman(screen):
    go = write_go_files(list(screen["bulk"].var_names), screen["folder"] / "go-fork", seed=1)
    model = GearsModel(cells=screen["path"], go_files=str(go), code=SCFOUNDATION_GEARS, epochs=1, device="cpu",
                       validation=screen["validation"]).fit(screen["train"])
    assert model.versions_["gears"].startswith("0.0.2 (scFoundation's fork")
    prediction = model.predict(screen["request"][:2])
    assert np.isfinite(prediction.X).all() and list(prediction.obs["reason"]) == ["", ""]

