"""Embeddings for the linear model: igraph's spectral embedding, GEARS' Jaccard graph, readers, transfer, plug-in."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_pseudobulk

from linpert import _r
from linpert.embeddings import (
    go_embedding,
    jaccard_go_graph,
    load_embedding,
    normalize_signs,
    parse_embedding_spec,
    random_embedding,
    read_embedding_table,
    read_gene2go,
    read_go_edges,
    read_scfoundation_gene_embedding,
    read_scgpt_gene_embedding,
    transfer_embedding,
)
from linpert.embeddings import _graph
from linpert.metrics import bootstrap_ratio, forest_table
from linpert.models import LinearModel, make_model

GOLDEN = json.loads((REPO / "inst/extdata/igraph/embedding_golden.json").read_text())
PAPER = GOLDEN["paper_pipeline_jaccard"]
BACKENDS = ["python", pytest.param("r", marks=pytest.mark.skipif(not _r.r_available("igraph"), reason="no igraph"))]


def paper_edges() -> pd.DataFrame:
    return pd.DataFrame(PAPER["edges"])


def bipartite_edges() -> pd.DataFrame:
    e = GOLDEN["bipartite_weighted"]["edges"]
    # an incidence graph lists each edge once; the adjacency matrix needs both directions
    return pd.DataFrame(
        {"source": e["from"] + e["to"], "target": e["to"] + e["from"], "importance": e["weight"] + e["weight"]}
    )


# ------------------------------------------------------------------------------------ spectral embedding
@pytest.mark.parametrize("backend", BACKENDS)
def test_go_embedding_reproduces_the_paper_pipeline(backend):
    emb = go_embedding(paper_edges(), backend=backend)  # the paper's no = 2, "lm", scaled
    expected = np.array(PAPER["X_sign_normalized"])
    np.testing.assert_allclose(emb.loc[PAPER["rownames"]].to_numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(emb.attrs["eigenvalues"], PAPER["D"], rtol=1e-12)
    assert list(emb.columns) == ["dim1", "dim2"] and emb.index.name == "gene"
    assert emb.attrs["backend"] == backend


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", range(4))
def test_go_embedding_reproduces_igraph_on_a_weighted_bipartite_graph(backend, case):
    ref = GOLDEN["bipartite_weighted"]["embeddings"][case]
    emb = go_embedding(bipartite_edges(), n_components=ref["no"], which=ref["which"], backend=backend)
    np.testing.assert_allclose(emb.loc[ref["rownames"]].to_numpy(), np.array(ref["X_sign_normalized"]), atol=1e-12)
    np.testing.assert_allclose(emb.attrs["eigenvalues"], ref["D"], rtol=1e-12)


def test_backends_agree_and_arpack_matches_the_dense_path(monkeypatch):
    dense = go_embedding(bipartite_edges(), n_components=4, backend="python")
    if _r.r_available("igraph"):
        pd.testing.assert_frame_equal(go_embedding(bipartite_edges(), n_components=4, backend="r"), dense, atol=1e-12)
    monkeypatch.setattr(_graph, "DENSE_LIMIT", 10)  # force scipy's eigsh
    pd.testing.assert_frame_equal(go_embedding(bipartite_edges(), n_components=4, backend="python"), dense, atol=1e-10)


def test_sign_convention_is_deterministic():
    emb = go_embedding(paper_edges(), n_components=2, backend="python")
    X = emb.to_numpy()
    assert (X[np.abs(X).argmax(axis=0), [0, 1]] > 0).all()
    # the row order of the edge table and the unscaled/scaled choice do not change the signs
    shuffled = paper_edges().sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(go_embedding(shuffled, backend="python"), emb, atol=1e-13)
    unscaled = go_embedding(paper_edges(), scaled=False, backend="python")
    np.testing.assert_allclose(unscaled.to_numpy() * np.sqrt(np.abs(emb.attrs["eigenvalues"])), X, atol=1e-13)
    np.testing.assert_array_equal(normalize_signs(np.array([[-3.0], [1.0]])), [[3.0], [-1.0]])


def test_go_embedding_matches_a_dense_eigendecomposition_of_igraphs_matrix():
    # independent reference: M = A + diag(strength / (n - 1)), a loop counted once in A and twice in strength
    edges = pd.DataFrame(
        {"source": ["a", "b", "a", "c", "c", "b"], "target": ["b", "a", "a", "b", "c", "c"], "importance": [2.0, 2, 1, 3, 5, 3]}
    )
    A = np.array([[1.0, 2, 0], [2, 0, 3], [0, 3, 5]])
    strength = A.sum(axis=1) + np.diag(A)
    values, vectors = np.linalg.eigh(A + np.diag(strength / 2))
    top = np.argsort(-np.abs(values))[:2]
    expected = normalize_signs(vectors[:, top] * np.sqrt(np.abs(values[top])))
    emb = go_embedding(edges, backend="python")
    np.testing.assert_allclose(emb.loc[["a", "b", "c"]].to_numpy(), expected, atol=1e-12)


def test_one_directional_edges_warn_and_use_the_larger_weight():
    one_way = pd.DataFrame(GOLDEN["bipartite_weighted"]["edges"]).rename(
        columns={"from": "source", "to": "target", "weight": "importance"}
    )
    with pytest.warns(UserWarning, match="not symmetric"):
        emb = go_embedding(one_way, n_components=2, backend="python")
    pd.testing.assert_frame_equal(emb, go_embedding(bipartite_edges(), n_components=2, backend="python"))


def test_go_embedding_rejects_bad_input():
    with pytest.raises(ValueError, match="lacks the columns"):
        go_embedding(pd.DataFrame({"source": ["a"], "target": ["b"]}))
    with pytest.raises(ValueError, match="non-negative"):
        go_embedding(pd.DataFrame({"source": ["a"], "target": ["b"], "importance": [-1.0]}))
    with pytest.raises(ValueError, match="between 1 and the number of genes"):
        go_embedding(paper_edges(), n_components=50, backend="python")
    with pytest.raises(ValueError, match="which='xx'"):
        go_embedding(paper_edges(), which="xx")
    with pytest.raises(ValueError, match="backend="):
        go_embedding(paper_edges(), backend="julia")


# ----------------------------------------------------------------------------------------- Jaccard graph
def test_jaccard_graph_reproduces_the_paper_pipeline_edges(tmp_path):
    path = tmp_path / "gene2go.pkl"
    path.write_bytes(pickle.dumps({g: set(t) for g, t in PAPER["gene2go"].items()}))
    gene2go = read_gene2go(path)
    edges = jaccard_go_graph(gene2go, sorted(gene2go), top_k=None)
    pd.testing.assert_frame_equal(edges, paper_edges(), check_dtype=False, rtol=0, atol=0)
    # and the CSV round trip of the GEARS format
    edges.to_csv(tmp_path / "go.csv", index=False)
    pd.testing.assert_frame_equal(read_go_edges(tmp_path / "go.csv"), edges)


@pytest.mark.slow
def test_jaccard_graph_matches_gears_own_functions(tmp_path, monkeypatch):
    gears_utils = pytest.importorskip("gears.utils", reason="cell-gears is not installed")

    class SerialPool:  # GEARS forks 25 workers; the result does not depend on them
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        imap = staticmethod(map)

    gene2go = {g: set(t) for g, t in PAPER["gene2go"].items()}
    genes = list(reversed(sorted(gene2go)))  # a non-sorted order: the listed order must be kept
    (tmp_path / "gene2go_all.pkl").write_bytes(pickle.dumps(gene2go))
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gears_utils, "Pool", SerialPool)
    # make_GO's own edge list (what the paper embeds), then GEARS' top-k step of get_similarity_network
    theirs = gears_utils.make_GO(str(tmp_path), genes, "toy_all", save=False)
    pd.testing.assert_frame_equal(jaccard_go_graph(gene2go, genes, top_k=None), theirs, check_dtype=False, rtol=0, atol=0)
    for k in (3, 20):
        theirs = gears_utils.get_similarity_network(
            "go", None, None, k, str(tmp_path), f"toy{k}", None, None, None, None,
            default_pert_graph=False, pert_list=genes,
        )
        ours = jaccard_go_graph(gene2go, genes, top_k=k)
        pd.testing.assert_frame_equal(ours, theirs.reset_index(drop=True), check_dtype=False, rtol=0, atol=0)


def test_jaccard_graph_skips_genes_without_terms_and_checks_input():
    go = {"A": {"t1"}, "B": {"t1", "t2"}, "C": set()}
    edges = jaccard_go_graph(go, ["A", "B", "C", "D", "A"], top_k=None)
    assert set(edges["source"]) == {"A", "B"}
    assert edges.loc[(edges.source == "A") & (edges.target == "B"), "importance"].item() == 0.5
    assert len(jaccard_go_graph(go, ["A", "B"], top_k=0)) == 2  # top_k + 1 = 1 edge per target
    with pytest.raises(ValueError, match="None of the genes has GO terms"):
        jaccard_go_graph(go, ["X"])
    with pytest.raises(ValueError, match="top_k"):
        jaccard_go_graph(go, ["A"], top_k=-1)


# ------------------------------------------------------------------------------------------------- readers
def write_scgpt(folder, rng):
    torch = pytest.importorskip("torch")
    vocab = {"<pad>": 0, "GENE1": 1, "<cls>": 2, "GENE2": 3, "GENE3": 4, "<eoc>": 5}
    state = {
        "encoder.embedding.weight": torch.tensor(rng.normal(size=(6, 8)), dtype=torch.float32),
        "encoder.enc_norm.weight": torch.tensor(rng.normal(size=8), dtype=torch.float32),
        "encoder.enc_norm.bias": torch.tensor(rng.normal(size=8), dtype=torch.float32),
        "transformer_encoder.layers.0.linear1.weight": torch.zeros(2, 2),
    }
    folder.mkdir(exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    torch.save(state, folder / "best_model.pt")
    return torch, state


def test_scgpt_reader_applies_the_encoder_layer_norm(tmp_path):
    torch, state = write_scgpt(tmp_path / "scgpt", np.random.default_rng(0))
    emb = read_scgpt_gene_embedding(tmp_path / "scgpt")
    assert list(emb.index) == ["GENE1", "GENE2", "GENE3"] and emb.shape == (3, 8)
    rows = state["encoder.embedding.weight"][[1, 3, 4]]
    expected = torch.nn.functional.layer_norm(
        rows.double(), (8,), state["encoder.enc_norm.weight"].double(), state["encoder.enc_norm.bias"].double(), 1e-5
    ).numpy()
    np.testing.assert_allclose(emb.to_numpy(), expected, atol=1e-12)
    # manual: standardise each row (biased variance), then scale and shift
    x = rows.double().numpy()
    manual = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    manual = manual * state["encoder.enc_norm.weight"].double().numpy() + state["encoder.enc_norm.bias"].double().numpy()
    np.testing.assert_allclose(emb.to_numpy(), manual, atol=1e-12)
    assert "<pad>" in read_scgpt_gene_embedding(tmp_path / "scgpt", special_tokens=True).index
    with pytest.raises(FileNotFoundError, match="No vocab.json"):
        read_scgpt_gene_embedding(tmp_path)


def test_scfoundation_reader_aligns_rows_with_the_gene_list(tmp_path):
    torch = pytest.importorskip("torch")
    weight = torch.tensor(np.random.default_rng(1).normal(size=(7, 4)), dtype=torch.float32)  # 5 genes + 2 tokens
    torch.save({"gene": {"state_dict": {"model.pos_emb.weight": weight}}, "rde": {}}, tmp_path / "models.ckpt")
    (tmp_path / "genes.tsv").write_text("gene_name\nA\nB\nC\nD\nE\n")
    emb = read_scfoundation_gene_embedding(tmp_path / "models.ckpt", tmp_path / "genes.tsv")
    assert list(emb.index) == list("ABCDE")
    np.testing.assert_array_equal(emb.to_numpy(), weight.double().numpy()[:5])
    same = read_scfoundation_gene_embedding(tmp_path / "models.ckpt", list("ABCDE"))
    pd.testing.assert_frame_equal(same, emb)
    with pytest.raises(ValueError, match="only 7 rows"):
        read_scfoundation_gene_embedding(tmp_path / "models.ckpt", [f"g{i}" for i in range(8)])
    torch.save({"state_dict": {}}, tmp_path / "wrong.ckpt")
    with pytest.raises(ValueError, match="pass scFoundation's models.ckpt"):
        read_scfoundation_gene_embedding(tmp_path / "wrong.ckpt", list("ABCDE"))


def test_embedding_table_round_trips(tmp_path):
    table = pd.DataFrame(np.arange(6.0).reshape(3, 2), index=pd.Index(["X", "Y", "Z"], name="gene"), columns=["dim1", "dim2"])
    table.to_csv(tmp_path / "e.tsv", sep="\t")
    table.to_csv(tmp_path / "e.csv")
    table.to_parquet(tmp_path / "e.parquet")
    table.T.to_csv(tmp_path / "wide.tsv", sep="\t")  # the paper's layout: dimensions × genes
    for name in ("e.tsv", "e.csv", "e.parquet"):
        pd.testing.assert_frame_equal(read_embedding_table(tmp_path / name), table)
    pd.testing.assert_frame_equal(read_embedding_table(tmp_path / "wide.tsv", transpose=True), table)
    (tmp_path / "text.tsv").write_text("gene\tdim1\tnote\nX\t1\tok\n")
    with pytest.raises(ValueError, match="must hold numbers only"):
        read_embedding_table(tmp_path / "text.tsv")
    with pytest.raises(ValueError, match="use a .tsv"):
        read_embedding_table(tmp_path / "e.xlsx")


# ---------------------------------------------------------------------------------- transfer and random
def test_transfer_embedding_is_the_pca_of_the_other_dataset():
    pb = make_pseudobulk(n_genes=40, n_singles=8, n_doubles=5, seed=3)
    emb = transfer_embedding(pb, n_components=4)
    Xc = pb.X - pb.X.mean(axis=0)
    U, D, _ = np.linalg.svd(Xc, full_matrices=False)
    singles = [i for i, name in enumerate(pb.obs_names) if name.endswith("+ctrl") or name == "ctrl"]
    expected = (U[:, :4] * D[:4])[singles]
    # the reference control's scores are the row ctrl (the paper's script keeps it); doubles are not returned
    assert list(emb.index) == [pb.obs_names[i].split("+")[0] for i in singles] and emb.index[0] == "ctrl"
    np.testing.assert_allclose(np.abs(emb.to_numpy()), np.abs(expected), atol=1e-10)
    signs = np.sign((emb.to_numpy() * expected).sum(axis=0))
    np.testing.assert_allclose(emb.to_numpy(), expected * signs, atol=1e-10)
    with pytest.raises(ValueError, match="n_components"):
        transfer_embedding(pb, n_components=0)


def test_random_embedding_is_standard_normal_and_seeded():
    emb = random_embedding([f"g{i}" for i in range(2000)], n_components=10, seed=7)
    assert abs(emb.to_numpy().mean()) < 0.02 and abs(emb.to_numpy().std() - 1) < 0.02
    pd.testing.assert_frame_equal(emb.iloc[:5], random_embedding([f"g{i}" for i in range(5)], n_components=10, seed=7))
    assert not np.allclose(emb.iloc[:5], random_embedding([f"g{i}" for i in range(5)], n_components=10, seed=8))


# ----------------------------------------------------------------------------------- plugging into models
def test_embedding_specs_parse_and_fail_clearly(tmp_path):
    spec = parse_embedding_spec("scfoundation:/m/models.ckpt?genes=/m/genes.tsv")
    assert (spec.kind, spec.path, spec.options) == ("scfoundation", "/m/models.ckpt", {"genes": "/m/genes.tsv"})
    assert parse_embedding_spec("go").path is None
    assert parse_embedding_spec("table:/x.tsv?transpose=true").options == {"transpose": True}
    with pytest.raises(ValueError, match="needs scFoundation's gene list"):
        parse_embedding_spec("scfoundation:/m/models.ckpt")
    with pytest.raises(ValueError, match="takes the options"):
        parse_embedding_spec("go:/x.csv?k=2")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_embedding(f"table:{tmp_path / 'nothing.tsv'}")
    with pytest.raises(ValueError, match="embedding spec such as"):
        LinearModel(perturbation_embedding="gene_ontology").fit(make_pseudobulk())


def renamed_golden_edges() -> pd.DataFrame:
    """The golden GO graph on the toy pseudobulk's gene names (G01 -> G0, ...), without gene G3."""
    edges = paper_edges()
    for column in ("source", "target"):
        edges[column] = "G" + (edges[column].str[1:].astype(int) - 1).astype(str)
    return edges[(edges.source != "G3") & (edges.target != "G3")]


def test_linear_model_with_each_embedding_kind(tmp_path):
    train = make_pseudobulk(n_genes=60, n_singles=12, n_doubles=10, seed=1)
    renamed_golden_edges().to_csv(tmp_path / "go_essential_all.csv", index=False)
    write_scgpt(tmp_path / "scgpt", np.random.default_rng(2))
    genes = list(train.var_names)
    (tmp_path / "scgpt" / "vocab.json").write_text(json.dumps({"<pad>": 0, genes[0]: 1, genes[1]: 2, genes[5]: 3, genes[9]: 4}))
    random_embedding(genes[:50], n_components=6, seed=0).to_csv(tmp_path / "g.tsv", sep="\t")
    other = make_pseudobulk(n_genes=60, n_singles=10, n_doubles=0, seed=5)
    other.write_h5ad(tmp_path / "other.h5ad")

    go = make_model("linear", perturbation_embedding=f"go:{tmp_path / 'go_essential_all.csv'}?backend=python").fit(train)
    assert go.perturbation_embedding_.shape[1] == 2
    assert "G3+ctrl" in go.dropped_ and "perturbation_embedding" in go.dropped_["G3+ctrl"]
    pred = go.predict(["G3+ctrl", "G20+ctrl", "G0+G1"])
    assert "no perturbation embedding for gene 'G3'" in pred.obs["reason"].iloc[0]
    assert np.isnan(pred.X[0]).all() and np.isfinite(pred.X[1:]).all()
    # the same as passing the embedding itself
    frame = go_embedding(renamed_golden_edges(), backend="python")
    same = LinearModel(perturbation_embedding=frame).fit(train).predict(["G20+ctrl"])
    np.testing.assert_allclose(go.predict(["G20+ctrl"]).X, same.X, atol=1e-10)

    scgpt = LinearModel(gene_embedding=f"scgpt:{tmp_path / 'scgpt'}").fit(train)
    assert len(scgpt.missing_genes_) == 56 and scgpt.gene_embedding_.shape[1] == 8
    table = LinearModel(gene_embedding=f"table:{tmp_path / 'g.tsv'}").fit(train)
    assert table.missing_genes_ == genes[50:]
    assert np.isnan(table.predict(["G1+ctrl"]).X[0, 50:]).all()
    transfer = LinearModel(perturbation_embedding=f"transfer:{tmp_path / 'other.h5ad'}").fit(train)
    assert sorted(transfer.dropped_) == ["G0+G10", "G0+G11", "G10+ctrl", "G11+ctrl"] or all(
        "G10" in c or "G11" in c for c in transfer.dropped_
    )
    assert transfer.perturbation_embedding_.shape == (11, 10)  # ten targets and ctrl
    assert np.isfinite(LinearModel(gene_embedding="random", seed=1).fit(train).predict(["G2+ctrl"]).X).all()


# ------------------------------------------------------------------------------------------- forest table
def test_forest_table_matches_a_manual_bootstrap():
    rng = np.random.default_rng(4)
    rows = []
    for dataset in ("adamson", "k562"):
        for seed in (1, 2):
            for p in range(15):
                for model in ("mean", "linear", "go"):
                    rows.append(
                        {"dataset": dataset, "split": "simulation", "seed": seed, "model": model,
                         "perturbation": f"P{p}+ctrl", "set": ["train", "test", "val"][p % 3], "l2": rng.gamma(5.0)}
                    )
    results = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    out = forest_table(results, n_boot=2000, seed=3)
    assert list(out[["dataset", "model"]].itertuples(index=False, name=None)) == [
        ("adamson", "go"), ("adamson", "linear"), ("k562", "go"), ("k562", "linear")
    ]
    scored = results[results["set"] != "train"]
    for _, row in out.iterrows():
        mine = scored[(scored.dataset == row.dataset) & (scored.model == row.model)]
        ref = scored[(scored.dataset == row.dataset) & (scored.model == "mean")].set_index(["seed", "perturbation"])
        ratio = mine["l2"].to_numpy() / ref.loc[list(zip(mine.seed, mine.perturbation)), "l2"].to_numpy()
        assert row.n == ratio.size == 20
        assert row["mean"] == pytest.approx(ratio.mean(), rel=1e-12)
        draws = np.random.default_rng(3).integers(0, ratio.size, size=(2000, ratio.size))
        boot = ratio[draws].mean(axis=1)
        assert row.lower == pytest.approx(np.quantile(boot, 0.025), rel=1e-12)
        assert row.upper == pytest.approx(np.quantile(boot, 0.975), rel=1e-12)
        assert row.se == pytest.approx(boot.std(ddof=1), rel=1e-12)
    with pytest.raises(ValueError, match="reference model 'none'"):
        forest_table(results, reference="none")
    with pytest.raises(ValueError, match="lacks the columns"):
        forest_table(results.drop(columns="l2"))
