"""The paper's deep-learning models behind linpert's model contract, each run in its own process.

Every adapter is a :class:`~linpert.models.PerturbationModel`: keyword hyperparameters (the paper's settings),
``fit(train)`` on a training pseudobulk, ``predict(conditions)`` returning absolute log expression with NaN and a
reason where the model cannot predict. The deep models train on cells, so they take ``cells=`` (GEARS' format, an
AnnData or an ``.h5ad`` path); the pseudobulk given to ``fit`` says which conditions are train and which genes to
predict.

Their stacks conflict, so each runs in a worker process driven through files, where its ``runtime=`` (a
:class:`Runtime`, or just ``"current"``, ``"venv"``, ``"docker:IMAGE"``) says: this interpreter, a virtual
environment built on first use from the adapter's :attr:`~WorkerModel.stacks` (the paper's pins where they install
on the Python at hand, else the nearest stack that does), or a container. The main process never imports torch.

The linear-decoder models (Geneformer, UCE, scBERT in the paper) need no worker: a ridge regression from a
per-condition cell embedding to the pseudobulk. :func:`overwrite_targets` (UCE, scBERT) and
:func:`rank_value_encoding` / :func:`perturb_rank_encoding` (Geneformer) build the perturbed inputs the paper
embedded with those models.

Examples
--------
>>> from linpert.adapters import ADAPTERS
>>> sorted(ADAPTERS)
['cellflow', 'cpa', 'gears', 'geneformer', 'scbert', 'scfoundation', 'scgpt', 'state', 'uce']
"""

from __future__ import annotations

from ..models._base import PerturbationModel
from .._errors import StackInstallError, WorkerError
from ._base import PROTOCOL, WorkerModel
from ._cells import de_keys, gears_cells, reconstruct_counts, validation_conditions
from ._decoder import EmbeddingDecoder, GeneformerDecoder, ScBertDecoder, UceDecoder, condition_embedding, ridge_fit
from ._environment import Runtime, Stack, container_command, ensure_venv, venv_path
from ._gears import GearsModel, gears_fork, write_go_files
from ._geneformer import geneformer_embedding, write_geneformer_model
from ._inputs import overwrite_targets, perturb_rank_encoding, rank_value_encoding
from ._scbert import scbert_embedding, write_scbert_model
from ._uce import uce_embedding, write_uce_model
from ._others import CpaModel, ScFoundationModel, ScGptModel, write_scgpt_checkpoint
from ._state import StateModel
from ._cellflow import CellFlowModel

#: Adapter name -> class, for ``linpert.models.resolve_models`` / ``make_model``.
ADAPTERS: dict[str, type[PerturbationModel]] = {
    "gears": GearsModel,
    "scgpt": ScGptModel,
    "scfoundation": ScFoundationModel,
    "cpa": CpaModel,
    "geneformer": GeneformerDecoder,
    "uce": UceDecoder,
    "scbert": ScBertDecoder,
    "state": StateModel,
    "cellflow": CellFlowModel,
}

#: The public names: the adapters, how they run, and the writers of small models in each model's own format (for
#: tests and for trying an adapter without downloading weights). The building blocks (environments, encodings, the
#: worker protocol) stay importable from here but are not part of the API.
__all__ = [
    "ADAPTERS",
    "CellFlowModel",
    "CpaModel",
    "EmbeddingDecoder",
    "GearsModel",
    "GeneformerDecoder",
    "Runtime",
    "ScBertDecoder",
    "ScFoundationModel",
    "ScGptModel",
    "Stack",
    "StackInstallError",
    "StateModel",
    "UceDecoder",
    "WorkerError",
    "WorkerModel",
    "gears_fork",
    "write_geneformer_model",
    "write_go_files",
    "write_scgpt_checkpoint",
    "write_scbert_model",
    "write_uce_model",
]
