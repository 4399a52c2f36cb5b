"""A stored array's values read straight from the ``.h5ad`` file, where HDF5 keeps them as plain bytes.

h5py reads one range at a time, under one lock for the whole process. A 1-D dataset stored without filters, in this
machine's byte order, holds its values as plain bytes at offsets HDF5 reports: one block when contiguous, one per
chunk when chunked (anndata's default, uncompressed). :class:`RawArray` reads ranges of such a dataset with
``os.preadv``, which lets other threads run, so the values and the indices of a chunk of rows are read at once on
two cores. Anything else (compression or another filter, an unallocated chunk, external storage, a platform without
``preadv``, an h5py too old to list the chunks quickly) gives None, and h5py reads it as before.
"""

from __future__ import annotations

import os

import numpy as np

#: Above this many chunks, listing where they lie costs more than it saves.
_MAX_CHUNKS = 100_000


class RawArray:
    """Where a raw 1-D dataset's values lie in its file: those from ``i * step`` on begin at byte ``offsets[i]``."""

    def __init__(self, path: str, dtype: np.dtype, size: int, step: int, offsets: np.ndarray) -> None:
        self.path, self.dtype, self.size, self.step, self.offsets = path, dtype, size, step, offsets

    @classmethod
    def of(cls, dataset) -> RawArray | None:
        """The dataset's layout, or None where it is not stored raw (h5py must read it)."""
        import h5py

        if not hasattr(os, "preadv") or dataset.ndim != 1 or dataset.dtype.kind not in "iuf":
            return None
        if not dataset.dtype.isnative or dataset.size == 0:
            return None
        plist = dataset.id.get_create_plist()
        if plist.get_nfilters() or plist.get_external_count():
            return None
        layout = plist.get_layout()
        if layout == h5py.h5d.CONTIGUOUS:
            step, offset = dataset.size, dataset.id.get_offset()
            pieces = [] if offset is None else [(0, offset)]
        elif layout == h5py.h5d.CHUNKED and hasattr(dataset.id, "chunk_iter"):
            step, pieces = dataset.chunks[0], []
            if -(-dataset.size // step) <= _MAX_CHUNKS:
                dataset.id.chunk_iter(lambda info: pieces.append((info.chunk_offset[0], info.byte_offset)))
        else:
            return None
        pieces.sort()
        # every chunk written, one per step (a chunk never written holds fill values the file does not store)
        if [start for start, _ in pieces] != list(range(0, dataset.size, step)):
            return None
        offsets = np.array([offset for _, offset in pieces], dtype=np.int64)
        return cls(dataset.file.filename, dataset.dtype, dataset.size, step, offsets)

    def read(self, lo: int, hi: int, out: np.ndarray) -> None:
        """Values ``lo:hi`` into ``out`` (a contiguous array of the dataset's type, at least ``hi - lo`` long)."""
        if not 0 <= lo <= hi <= self.size:
            raise IndexError(f"{lo}:{hi} is outside the {self.size} values of {self.path}.")
        target = memoryview(out[: hi - lo]).cast("B")
        itemsize = self.dtype.itemsize
        fd = os.open(self.path, os.O_RDONLY)
        try:
            at = lo
            while at < hi:
                piece, end = at // self.step, min(hi, (at // self.step + 1) * self.step)
                _read_fully(fd, target[(at - lo) * itemsize : (end - lo) * itemsize],
                            int(self.offsets[piece]) + (at - piece * self.step) * itemsize)
                at = end
        finally:
            os.close(fd)


def _read_fully(fd: int, target: memoryview, offset: int) -> None:
    """``len(target)`` bytes from ``offset``: ``preadv`` may stop short of what it was asked."""
    while len(target):
        n = os.preadv(fd, [target], offset)
        if n <= 0:
            raise OSError(f"The file ended {len(target)} bytes short of a stored array; is it truncated?")
        target, offset = target[n:], offset + n
