"""Reading the two sides of a crossmatch in bounded memory.

- :func:`open_external` turns a HATS catalog (or collection) directory, a Parquet file or
  directory, a CSV file, a FITS table, a pyarrow Table or a pandas DataFrame into an
  :class:`External`: a schema plus an iterator of Arrow record batches of at most
  ``batch_rows`` rows. FITS column names are lower-cased (the project's Arrow convention).
- :class:`Lake` lists a HATS catalog's partitions (``Norder``, ``Npix``) as disjoint ranges
  of ``_healpix_29`` and reads one partition's rows, pruning row groups with the
  ``_healpix_29`` min/max statistics.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.errors import UserError
from legacylake.etl import layout
from legacylake.etl.layout import read_properties

HP_COL = "_healpix_29"
#: Columns of the partition path that readers of a hive-style HATS dataset may add.
PARTITION_COLS = ("Norder", "Dir", "Npix")


def hats_catalog_dir(path: Path) -> Path | None:
    """The catalog directory of a HATS catalog or collection at ``path`` (a collection's
    current snapshot, resolved now; None if not HATS)."""
    d = layout.hats_dir(path)
    return Path(d) if d is not None else None


@dataclass
class External:
    """An external catalog: a name for messages, its Arrow schema, a batch iterator."""

    name: str
    schema: pa.Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]
    num_rows: int | None = None
    default_ra: str | None = None
    default_dec: str | None = None


def _lower_batch(b: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(b.columns, names=[n.lower() for n in b.schema.names])


def open_external(source, batch_rows: int = 500_000) -> External:
    """Open an external catalog (path or in-memory table) for streaming."""
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        tbl = source
        return External("<arrow table>", tbl.schema, lambda: iter(tbl.to_batches(batch_rows)), tbl.num_rows)
    try:
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            tbl = pa.Table.from_pandas(source, preserve_index=False)
            return External("<pandas DataFrame>", tbl.schema, lambda: iter(tbl.to_batches(batch_rows)),
                            tbl.num_rows)
    except ImportError:  # pragma: no cover
        pass
    path = Path(os.fspath(source))
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        cat = hats_catalog_dir(path)
        if cat is not None:
            return _open_hats(cat)
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if files:
            return _open_parquet_files(path, files, batch_rows)
        fits = sorted(p for p in path.rglob("*.fits") if p.is_file())
        if fits:
            return _chain(path, [_open_fits(f, batch_rows) for f in fits])
        raise UserError(f"{path}: directory holds no HATS catalog, no .parquet and no .fits files")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable (permission denied)")
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".fits", ".fit", ".fits.gz", ".fits.fz", ".fts")):
        return _open_fits(path, batch_rows)
    if suffix.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        return _open_csv(path, batch_rows)
    if suffix.endswith((".parquet", ".pq")):
        return _open_parquet_files(path, [path], batch_rows)
    # unknown extension: sniff
    head = path.read_bytes()[:8] if path.stat().st_size else b""
    if head.startswith(b"PAR1"):
        return _open_parquet_files(path, [path], batch_rows)
    if head.startswith(b"SIMPLE"):
        return _open_fits(path, batch_rows)
    return _open_csv(path, batch_rows)


def _chain(name: Path, parts: list[External]) -> External:
    schema = parts[0].schema
    for p in parts[1:]:
        if p.schema.names != schema.names:
            raise UserError(f"{p.name}: columns differ from {parts[0].name}; cannot read {name} as one table")

    def gen() -> Iterator[pa.RecordBatch]:
        for p in parts:
            for b in p.batches():
                yield b.cast(schema) if b.schema != schema else b

    return External(str(name), schema, gen, sum(p.num_rows or 0 for p in parts))


def _open_parquet_files(name: Path, files: list[Path], batch_rows: int) -> External:
    try:
        schemas = [pq.read_schema(f) for f in files[:1]]
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UserError(f"{files[0]}: not a readable Parquet file ({exc.__class__.__name__}: {exc})")
    schema = schemas[0]
    schema = pa.schema([f for f in schema if f.name not in PARTITION_COLS])
    nrows = None
    try:
        nrows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception as exc:
        raise UserError(f"{name}: not readable Parquet ({exc})")

    def gen() -> Iterator[pa.RecordBatch]:
        for f in files:
            try:
                pf = pq.ParquetFile(f)
                for b in pf.iter_batches(batch_size=batch_rows, columns=schema.names):
                    yield b
            except UserError:
                raise
            except Exception as exc:
                raise UserError(f"{f}: cannot read Parquet ({exc.__class__.__name__}: {exc})")

    return External(str(name), schema, gen, nrows)


def _open_hats(cat: Path) -> External:
    props_file = cat / "hats.properties" if (cat / "hats.properties").is_file() else cat / "properties"
    props = read_properties(props_file)
    files = sorted((cat / "dataset").glob("Norder=*/Dir=*/Npix=*"))
    files = [f for f in files if f.is_file()] + [g for d in files if d.is_dir() for g in sorted(d.glob("*.parquet"))]
    if not files:
        raise UserError(f"{cat}: HATS catalog has no leaf files under dataset/")
    ext = _open_parquet_files(cat, files, 500_000)
    ext.default_ra = props.get("hats_col_ra")
    ext.default_dec = props.get("hats_col_dec")
    return ext


def _open_csv(path: Path, batch_rows: int) -> External:
    import pyarrow.csv as pacsv

    with open(path, newline="", errors="replace") as fh:
        sample = fh.read(65536)
    delim = ","
    try:
        delim = csv.Sniffer().sniff(sample.splitlines()[0] if sample else ",", delimiters=",;\t|").delimiter
    except csv.Error:
        pass

    def reader():
        try:
            return pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24),
                                  parse_options=pacsv.ParseOptions(delimiter=delim))
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{path}: not a readable CSV table ({exc})")

    schema = reader().schema

    def gen() -> Iterator[pa.RecordBatch]:
        r = reader()
        while True:
            try:
                b = r.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise UserError(f"{path}: bad CSV row ({exc})")
            for off in range(0, b.num_rows, batch_rows):
                yield b.slice(off, batch_rows)

    return External(str(path), schema, gen, None)


def _open_fits(path: Path, batch_rows: int) -> External:
    import fitsio

    try:
        fits = fitsio.FITS(str(path))
    except Exception as exc:
        raise UserError(f"{path}: not a readable FITS file ({exc})")
    hdu = next((h for h in fits[1:] if h.get_exttype() in ("BINARY_TBL", "ASCII_TBL")), None)
    if hdu is None:
        raise UserError(f"{path}: FITS file has no table extension")
    ext_no = hdu.get_extnum()
    nrows = hdu.get_nrows()
    first = _fits_to_batch(hdu[0:1]) if nrows else None
    fits.close()
    if first is None:
        raise UserError(f"{path}: FITS table is empty")
    schema = first.schema

    def gen() -> Iterator[pa.RecordBatch]:
        with fitsio.FITS(str(path)) as f:
            h = f[ext_no]
            for start in range(0, nrows, batch_rows):
                yield _fits_to_batch(h[start:min(nrows, start + batch_rows)])

    return External(str(path), schema, gen, nrows)


def _fits_to_batch(arr: np.ndarray) -> pa.RecordBatch:
    cols, names = [], []
    for name in arr.dtype.names:
        a = arr[name]
        if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian):
            a = a.astype(a.dtype.newbyteorder("="))
        if a.dtype.kind == "S":
            col = pa.array(np.char.rstrip(np.char.decode(a, "ascii", "replace")).astype(object), pa.string())
        elif a.ndim > 1:
            flat = a.reshape(a.shape[0], -1)
            col = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
        else:
            col = pa.array(a)
        cols.append(col)
        names.append(name.lower())
    return pa.RecordBatch.from_arrays(cols, names=names)


# ---------------------------------------------------------------- the lake side


@dataclass
class Lake:
    """A HATS catalog of the lake: partitions as sorted disjoint ``_healpix_29`` ranges."""

    path: Path
    orders: np.ndarray
    pixels: np.ndarray
    lo29: np.ndarray
    hi29: np.ndarray
    properties: dict = field(default_factory=dict)

    @classmethod
    def open(cls, lake: str | os.PathLike, catalog: str | None = None) -> "Lake":
        root = Path(os.fspath(lake))
        path = root / catalog if catalog else root
        cat = hats_catalog_dir(path) if path.is_dir() else None
        if cat is None:
            where = f"{root} (catalog {catalog})" if catalog else str(root)
            raise UserError(f"{where}: not a HATS catalog (no hats.properties and dataset/)")
        props_file = cat / "hats.properties" if (cat / "hats.properties").is_file() else cat / "properties"
        props = read_properties(props_file)
        pinfo = cat / "partition_info.csv"
        pairs: list[tuple[int, int]] = []
        if pinfo.is_file():
            with open(pinfo) as fh:
                for row in csv.DictReader(fh):
                    pairs.append((int(row["Norder"]), int(row["Npix"])))
        else:
            for f in (cat / "dataset").glob("Norder=*/Dir=*/Npix=*.parquet"):
                o = int(f.parent.parent.name.split("=")[1])
                n = int(f.name.split("=")[1].split(".")[0])
                pairs.append((o, n))
        if not pairs:
            raise UserError(f"{cat}: HATS catalog lists no partitions")
        orders = np.array([p[0] for p in pairs], np.int64)
        pixels = np.array([p[1] for p in pairs], np.int64)
        shift = 2 * (29 - orders)
        lo = pixels << shift
        hi = (pixels + 1) << shift
        idx = np.argsort(lo)
        return cls(cat, orders[idx], pixels[idx], lo[idx], hi[idx], props)

    @property
    def ra_col(self) -> str:
        return self.properties.get("hats_col_ra", "ra")

    @property
    def dec_col(self) -> str:
        return self.properties.get("hats_col_dec", "dec")

    def leaf(self, k: int) -> Path:
        o, n = int(self.orders[k]), int(self.pixels[k])
        return self.path / "dataset" / f"Norder={o}" / f"Dir={(n // 10000) * 10000}" / f"Npix={n}.parquet"

    def schema(self) -> pa.Schema:
        for name in ("_common_metadata", "_metadata"):
            f = self.path / "dataset" / name
            if f.is_file():
                return pq.read_schema(f)
        return pq.read_schema(self.leaf(0))

    def read(self, k: int, columns: list[str], ranges29: tuple[np.ndarray, np.ndarray] | None = None) -> pa.Table:
        """Rows of partition ``k``; with ``ranges29`` (sorted lo, hi) only row groups overlapping them."""
        f = self.leaf(k)
        if not f.is_file():
            d = f.with_suffix("")
            if d.is_dir():
                return pq.read_table(d, columns=columns, partitioning=None)
            raise UserError(f"{f}: lake partition listed in partition_info.csv is missing")
        pf = pq.ParquetFile(f)
        groups = list(range(pf.metadata.num_row_groups))
        if ranges29 is not None and pf.metadata.num_row_groups > 1:
            ci = pf.schema_arrow.get_field_index(HP_COL)
            keep = []
            rlo, rhi = ranges29
            for g in groups:
                st = pf.metadata.row_group(g).column(ci).statistics
                if st is None or not st.has_min_max:
                    keep.append(g)
                    continue
                # any range with lo <= max and hi > min
                a = np.searchsorted(rhi, st.min, side="right")
                if a < rlo.shape[0] and rlo[a] <= st.max:
                    keep.append(g)
            groups = keep
        if not groups:
            return pf.schema_arrow.empty_table().select(columns)
        # one thread: the decode buffers of parallel column readers would add to the peak memory
        return pf.read_row_groups(groups, columns=columns, use_threads=False)
