"""Errors that cross layers: raised by the adapters, handled by the runner and the command line."""

from __future__ import annotations

__all__ = ["StackInstallError", "WorkerError"]


class WorkerError(RuntimeError):
    """A model's worker process failed (crashed, was killed, or raised): the message ends with its log."""


class StackInstallError(RuntimeError):
    """An adapter's isolated environment could not be built: the message names the package pip blamed."""
