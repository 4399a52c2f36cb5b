"""Small file helpers shared by the package: atomic writes, so no reader ever sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike, content: Any, *, kind: str = "text") -> Path:
    """Write ``content`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    ``kind`` is ``"text"`` (a str), ``"bytes"``, ``"parquet"`` or ``"csv"`` (a DataFrame), or ``"h5ad"`` (an AnnData).
    An interrupted write leaves the previous file (or none) in place, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if kind == "text":
            Path(tmp).write_text(content)
        elif kind == "bytes":
            Path(tmp).write_bytes(content)
        elif kind == "parquet":
            content.to_parquet(tmp)
        elif kind == "csv":
            content.to_csv(tmp, index=False)
        elif kind == "h5ad":
            content.write_h5ad(tmp)
        else:
            raise ValueError(f"Unknown kind {kind!r}; use text, bytes, parquet, csv or h5ad.")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
