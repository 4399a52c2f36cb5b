"""GEARS (Roohani et al. 2023) through linpert's model contract, trained in a worker process.

:class:`GearsModel` hands GEARS its cells in GEARS' own format with linpert's split as a custom split, and GEARS' GO
files from a folder the user gives (``go_files=``: never downloaded at run time). :func:`write_go_files` writes
small GO files in GEARS' format, for tests and simulated data.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._io import atomic_write
from ._base import WorkerModel
from ._environment import Runtime, Stack

__all__ = ["GearsModel", "gears_fork", "write_go_files"]

#: scFoundation's repository at the commit that the paper's ``run_scfoundation.py`` cites (its
#: ``GEARS/run_sh/run_singlecell_maeautobin-0.1B-res0-norman.sh``); its ``GEARS`` folder is the GEARS 0.0.2 fork that
#: the paper's ``run_gears.py`` ran on Norman.
SCFOUNDATION_COMMIT = "69b0710660aded7e071d4f67e9f3ac03b096e587"
SCFOUNDATION_ARCHIVE = f"https://github.com/biomap-research/scFoundation/archive/{SCFOUNDATION_COMMIT}.tar.gz"
FORK_VERSION = "0.0.2"

# Newer releases of these need a newer numpy than the old stacks pin (or drop the wheels they had).
OLD_NUMPY = ("contourpy<1.4", "matplotlib<3.10", "pyarrow<16")
#: scFoundation's GEARS 0.0.2 fork: its encoder imports torchvision and omegaconf besides GEARS 0.0.2's
#: dependencies; torch 2.1 was built against numpy 1.
FORK_STACKS = (
    Stack(("torch==2.1.2", "torchvision==0.16.2", "torch_geometric==2.4.0", "omegaconf", "scanpy", "anndata",
           "networkx", "einops", "local-attention", "dcor", "scipy<1.15", "numpy<2"), pythons=("3.10", "3.11"),
          constraints=OLD_NUMPY, note="the GEARS 0.0.2 fork's dependencies with the torch of the paper's time"),
    Stack(("torch==2.3.0", "torchvision==0.18.0", "torch_geometric==2.5.3", "omegaconf", "scanpy", "anndata",
           "networkx", "einops", "local-attention", "dcor", "scipy<1.15", "numpy<2"), pythons=("3.12",),
          constraints=OLD_NUMPY, note="torch 2.1.2 has no wheels for Python 3.12"),
)


class GearsModel(WorkerModel):
    """GEARS, with the paper's settings, behind ``fit(train)`` / ``predict(conditions)``.

    Parameters
    ----------
    cells
        Cell-level data in GEARS' format (AnnData or ``.h5ad`` path) holding at least the cells of the training
        conditions, of the validation conditions when they are named, and ``ctrl``. Can also be given to ``fit``.
    go_files
        Folder with GEARS' ``gene2go_all.pkl``, ``essential_all_data_pert_genes.pkl`` and ``go_essential_all.csv``
        (Harvard Dataverse files 6153417, 6934320, 6934319; see :func:`write_go_files` for simulated data).
    code
        scFoundation's GEARS 0.0.2 fork (``scFoundation/GEARS`` of a clone of its repository) instead of
        cell-gears 0.1.2: the paper's ``run_gears.py`` ran GEARS from that fork on Norman (its
        ``norman_from_scfoundation``), with the same settings, and 0.1.2 on the other datasets. The fork runs in an
        isolated environment of its dependencies, from inside the clone (see :class:`ScFoundationModel`).
        :func:`gears_fork` downloads it (``linpert run norman`` does so under the paper preset).
    preset
        ``"paper"`` (default): GEARS picks its best epoch on the split's validation conditions, as the paper's
        ``run_gears.py`` did (``set2conditions["val"]``; they are also scored, which is the paper's choice);
        ``"linpert"``: on a tenth of the training perturbations, held out from training.
    validation
        Overrides the preset: a fraction of the training perturbations held out from training (drawn with
        ``seed``), or a list of names whose cells are in ``cells``. The test split is never given to GEARS.
    hidden_size, epochs, batch_size, test_batch_size, lr, weight_decay
        ``model_initialize(hidden_size=64)``, ``train(epochs=20, lr=1e-3, weight_decay=5e-4)``,
        ``get_dataloader(batch_size=32, test_batch_size=128)``: the paper's settings.
    runtime
        Where the worker runs: a :class:`~linpert.adapters.Runtime` or its environment as a string: ``"current"``
        (needs ``pip install 'linpert[gears]'``), ``"venv"`` (an isolated environment with :attr:`stacks`, built on
        first use), ``"docker:IMAGE"`` or ``"podman:IMAGE"``. Default: ``"current"`` for cell-gears, ``"venv"``
        for the fork.
    device
        ``"auto"`` (CUDA when the worker sees a GPU), ``"cpu"`` or ``"cuda"``.
    seed
        Seeds Python, numpy and torch in the worker (GEARS samples control cells with numpy's global RNG).
    work_dir
        Keep the run folder (data, model, logs) under this folder; by default a temporary folder that is removed
        with the model.
    condition_key
        The column of ``cells.obs`` that holds the conditions.

    Notes
    -----
    A perturbation whose gene is not in GEARS' GO graph cannot be predicted: its row is NaN with a reason, and
    such training conditions are dropped (``dropped_``). ``ctrl`` is predicted as the control pseudobulk.

    Examples
    --------
    >>> GearsModel(go_files="go/", epochs=1)  # doctest: +ELLIPSIS
    GearsModel(cells=None, go_files='go/', code=None, preset='paper', validation=None, hidden_size=64, epochs=1, ...)
    """

    name = "gears"
    extra = "gears"
    # GEARS 0.1.2 needs torch_geometric (undeclared), scipy < 1.15 and pandas < 3 (it indexes Series by position)
    RELEASE_STACKS = (Stack(("cell-gears==0.1.2", "torch_geometric==2.8.1", "scipy<1.15", "pandas<3", "anndata>=0.10"),
                            note="the paper's cell-gears 0.1.2"),)

    # cell-gears 0.1.2, or the fork (run by the scFoundation worker, which knows how to import it)
    @property
    def worker(self) -> str:
        return "gears_worker.py" if self.code is None else "scfoundation_worker.py"

    @property
    def stacks(self) -> tuple[Stack, ...]:
        return self.RELEASE_STACKS if self.code is None else FORK_STACKS

    @property
    def modules(self) -> tuple[str, ...]:
        return ("gears", "torch", "torch_geometric") if self.code is None else ("torch", "torch_geometric")

    @property
    def default_runtime(self) -> str:
        return "current" if self.code is None else "venv"

    @property
    def needs_counts(self) -> bool:
        return self.code is not None  # the fork's data loading reads obs['total_count']

    def __init__(
        self,
        *,
        cells: Any = None,
        go_files: str | os.PathLike | None = None,
        code: str | os.PathLike | None = None,
        preset: str = "paper",
        validation: float | Sequence[str] | None = None,
        hidden_size: int = 64,
        epochs: int = 20,
        batch_size: int = 32,
        test_batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        runtime: Runtime | str | None = None,
        device: str = "auto",
        seed: int | None = 0,
        work_dir: str | os.PathLike | None = None,
        condition_key: str = "condition",
    ) -> None:
        self.cells = cells
        self.go_files = go_files
        self.code = code
        self.preset = preset
        self.validation = validation
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.runtime = runtime
        self.device = device
        self.seed = seed
        self.work_dir = work_dir
        self.condition_key = condition_key

    def _params(self) -> dict[str, Any]:
        for key in ("hidden_size", "epochs", "batch_size", "test_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}.")
        return {
            "hidden_size": int(self.hidden_size),
            "epochs": int(self.epochs),
            "batch_size": int(self.batch_size),
            "test_batch_size": int(self.test_batch_size),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            **({} if self.code is None else {"fork_model": "gears"}),  # the fork's plain GEARS, not scFoundation
        }

    def _inputs(self) -> dict[str, str | os.PathLike]:
        if self.go_files is None:
            raise ValueError(
                "GearsModel needs go_files=<folder> holding GEARS' gene2go_all.pkl, essential_all_data_pert_genes.pkl "
                "and go_essential_all.csv (linpert never downloads them at run time; "
                "linpert.adapters.write_go_files writes small ones for simulated data)."
            )
        if not os.path.isdir(self.go_files):
            raise FileNotFoundError(f"go_files={str(self.go_files)!r} is not a folder.")
        if self.code is not None and not (Path(self.code) / "gears" / "version.py").is_file():
            raise FileNotFoundError(f"code={str(self.code)!r} is not scFoundation's GEARS fork (it needs "
                                    "gears/version.py): pass the GEARS folder of a clone of scFoundation.")
        return {"go_files": self.go_files, **({} if self.code is None else {"code": self.code})}


def gears_fork(*, cache_dir: str | os.PathLike | None = None, url: str | None = None, progress: bool = True) -> Path:
    """scFoundation's GEARS 0.0.2 fork, as the paper ran GEARS on Norman: the ``GEARS`` folder of scFoundation's
    repository at :data:`SCFOUNDATION_COMMIT`, downloaded once into the cache (``<cache>/code/``).

    Pass it as ``GearsModel(code=gears_fork())``; ``linpert run norman`` does so under the paper preset.

    Parameters
    ----------
    cache_dir
        The cache folder; default ``$LINPERT_DATA_DIR``, else ``~/.cache/linpert``.
    url
        The repository's archive from this address instead of GitHub's (or ``$LINPERT_MIRROR/<commit>.tar.gz``).
    progress
        Show a progress bar, in bytes.

    Returns
    -------
    Path
        The fork's folder (it holds ``gears/version.py`` saying 0.0.2).
    """
    from .._config import ENV_MIRROR, data_dir
    from ..datasets._download import DownloadError, download, extract_folder

    folder = data_dir(cache_dir) / "code" / f"scFoundation-{SCFOUNDATION_COMMIT[:7]}" / "GEARS"
    if _gears_version(folder) == FORK_VERSION:
        return folder
    mirror = os.environ.get(ENV_MIRROR)
    source = url or (f"{mirror.rstrip('/')}/{SCFOUNDATION_COMMIT}.tar.gz" if mirror else SCFOUNDATION_ARCHIVE)
    archive = folder.parent / f"{SCFOUNDATION_COMMIT}.tar.gz"
    try:
        download(source, archive, kind="tar.gz", progress=progress)
    except DownloadError as err:
        raise DownloadError(f"{err} Without the download: clone https://github.com/biomap-research/scFoundation at "
                            f"{SCFOUNDATION_COMMIT[:7]} and give its GEARS folder as gears(code=...), or run with "
                            "--preset linpert (cell-gears 0.1.2).") from err
    try:
        extract_folder(archive, "GEARS", folder)
    finally:
        archive.unlink(missing_ok=True)
    version = _gears_version(folder)
    if version != FORK_VERSION:
        shutil.rmtree(folder)
        raise DownloadError(f"{source} holds no GEARS {FORK_VERSION} fork in its GEARS folder (version: {version}); "
                            f"it must be scFoundation's repository at commit {SCFOUNDATION_COMMIT}.")
    return folder


def _gears_version(folder: Path) -> str | None:
    import re

    path = folder / "gears" / "version.py"
    found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", path.read_text()) if path.is_file() else None
    return found.group(1) if found else None


def write_go_files(
    genes: Sequence[str],
    folder: str | os.PathLike,
    *,
    n_terms: int | None = None,
    terms_per_gene: int = 5,
    seed: int = 0,
) -> Path:
    """Write small GO files in GEARS' format covering ``genes``, for simulated data and tests.

    Each gene gets ``terms_per_gene`` random GO terms out of ``n_terms`` (default ``max(10, len(genes) // 4)``);
    ``go_essential_all.csv`` holds every ordered pair (self-pairs included) whose Jaccard index of terms exceeds
    0.1, with the index as ``importance`` — what GEARS' ``make_GO`` computes from ``gene2go_all.pkl``.

    Returns
    -------
    Path
        ``folder``, holding ``gene2go_all.pkl`` (gene -> set of terms), ``essential_all_data_pert_genes.pkl``
        (the gene list) and ``go_essential_all.csv`` (``source``, ``target``, ``importance``).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = write_go_files(["A", "B", "C"], tempfile.mkdtemp(), n_terms=2, terms_per_gene=1)
    >>> sorted(pd.read_csv(folder / "go_essential_all.csv").columns)
    ['importance', 'source', 'target']
    """
    genes = [str(g) for g in genes]
    n_terms = max(10, len(genes) // 4) if n_terms is None else int(n_terms)
    if not 1 <= terms_per_gene <= n_terms:
        raise ValueError(f"terms_per_gene must lie in [1, n_terms={n_terms}], got {terms_per_gene}.")
    rng = np.random.default_rng(seed)
    terms = np.vstack([np.sort(rng.choice(n_terms, terms_per_gene, replace=False)) for _ in genes])
    incidence = sparse.csr_matrix(
        (np.ones(terms.size), (np.repeat(np.arange(len(genes)), terms_per_gene), terms.ravel())),
        shape=(len(genes), n_terms),
    )
    shared = sparse.coo_matrix(incidence @ incidence.T)
    jaccard = shared.data / (2 * terms_per_gene - shared.data)
    keep = jaccard > 0.1
    names = np.asarray(genes, dtype=object)
    edges = pd.DataFrame(
        {"source": names[shared.row[keep]], "target": names[shared.col[keep]], "importance": jaccard[keep]}
    ).sort_values(["source", "target"], kind="stable")

    folder = Path(folder)
    gene2go = {g: {f"GO:{t:07d}" for t in row} for g, row in zip(genes, terms)}
    atomic_write(folder / "gene2go_all.pkl", pickle.dumps(gene2go), kind="bytes")
    atomic_write(folder / "essential_all_data_pert_genes.pkl", pickle.dumps(list(genes)), kind="bytes")
    atomic_write(folder / "go_essential_all.csv", edges, kind="csv")
    return folder
