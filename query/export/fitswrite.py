"""Arrow columns of a lake as a FITS binary table of a data model, appended batch by batch."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from legacylake.catalogs_schema.columns import Column
from legacylake.errors import UserError


def to_numpy(col: Column, arr: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """A lake column as the numpy array of the model column ``col`` (strings as fixed-width
    bytes, fixed-size lists as (n, k) arrays). UserError naming the column for NULLs or a
    wrong shape."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        raise UserError(f"{where}: column {col.name!r} has {arr.null_count} NULL values; FITS {col.tform} cannot hold them")
    if col.is_string:
        return np.array([s.encode() for s in arr.to_pylist()], dtype=f"S{col.width}")
    if col.shape:
        if not pa.types.is_fixed_size_list(arr.type) or arr.type.list_size != col.shape[0]:
            raise UserError(f"{where}: column {col.name!r} is {arr.type}, the model wants {col.type_label}")
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(len(arr), col.shape[0]).astype(col.numpy_dtype, copy=False)
    return arr.to_numpy(zero_copy_only=False).astype(col.numpy_dtype, copy=False)


def records(cols: list[Column], table: pa.Table, where: str) -> np.ndarray:
    """A structured array with upper-case FITS names of the model columns ``cols`` of ``table``."""
    arrays = [to_numpy(c, table.column(c.name), where) for c in cols]
    dtype = [(c.name.upper(), a.dtype, a.shape[1:]) if a.ndim > 1 else (c.name.upper(), a.dtype) for c, a in zip(cols, arrays)]
    out = np.empty(table.num_rows, dtype=dtype)
    for c, a in zip(cols, arrays):
        out[c.name.upper()] = a
    return out


class FitsAppender:
    """A FITS table written to ``path + '.tmp'`` in appended batches and renamed to ``path`` by
    :meth:`close` (an empty table is not written). One HDU named ``extname``, units from the model."""

    def __init__(self, path: str, cols: list[Column], extname: str, header: dict | None = None):
        self.path, self.tmp, self.cols, self.extname = path, path + ".tmp", cols, extname
        self.header = header or {}
        self.rows = 0
        self._fits = None

    def append(self, table: pa.Table, where: str) -> None:
        if table.num_rows == 0:
            return
        import fitsio

        rec = records(self.cols, table, where)
        if self._fits is None:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)
            self._fits = fitsio.FITS(self.tmp, "rw", clobber=True)
            units = [c.unit for c in self.cols]
            hdr = [{"name": k, "value": v} for k, v in self.header.items()]
            self._fits.write(rec, extname=self.extname, units=units, header=hdr)
        else:
            self._fits[-1].append(rec)
        self.rows += table.num_rows

    def close(self) -> int:
        """Finish: rename to the final name (if any row was written); returns the rows."""
        if self._fits is not None:
            self._fits.close()
            self._fits = None
            os.replace(self.tmp, self.path)
        return self.rows

    def abort(self) -> None:
        if self._fits is not None:
            self._fits.close()
            self._fits = None
        if os.path.exists(self.tmp):
            os.remove(self.tmp)
