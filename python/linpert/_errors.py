"""Errors that cross layers: raised by the adapters, handled by the runner and the command line."""

from __future__ import annotations

__all__ = ["StackInstallError", "WorkerError", "in_user_code", "raised_in"]


class WorkerError(RuntimeError):
    """A model's worker process failed (crashed, was killed, or raised): the message ends with its log."""


class StackInstallError(RuntimeError):
    """An adapter's isolated environment could not be built: the message names the package pip blamed."""


def raised_in(err: BaseException, where: str, *, user_code: bool) -> None:
    """Note on ``err`` where it was raised (``"while fitting model 'mine' on split seed 1"``); ``user_code``: in a
    model or metric the user wrote, so the command line reports it as the user's error, in one line."""
    err.add_note(f"({where})")
    if user_code:
        err._linpert_user_code = True


def in_user_code(err: BaseException) -> bool:
    """Whether ``err`` was raised in a model or metric the user wrote (see :func:`raised_in`)."""
    return getattr(err, "_linpert_user_code", False)
