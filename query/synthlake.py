"""A small HATS lake of random DR9 rows, for the query layer's tests and benchmarks.

This is a stand-in for ``legacylake.etl.build`` (which writes real lakes from Tractor
files): it writes the same layout, ``LAKE/NAME/hats.properties``, ``partition_info.csv``,
``dataset/_common_metadata`` and ``dataset/Norder=k/Dir=d/Npix=n.parquet`` with
``_healpix_29`` first, rows sorted by it, several row groups per file, lowercase columns
with unit/description field metadata from :mod:`legacylake.catalogs_schema`.
Partitions are all at one order (``order``), which keeps the writer short.
"""

from __future__ import annotations

import os
from pathlib import Path

import cdshealpix
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.coordinates import Latitude, Longitude
import astropy.units as u

from legacylake.catalogs_schema import BITMASKS, model
from legacylake.catalogs_schema.random_table import random_brick_table


def healpix29(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Nested HEALPix index at order 29 (int64) of ra, dec in degrees."""
    ra = np.mod(np.asarray(ra, dtype=np.float64), 360.0)
    dec = np.clip(np.asarray(dec, dtype=np.float64), -90.0, 90.0)
    return cdshealpix.nested.lonlat_to_healpix(Longitude(ra * u.deg), Latitude(dec * u.deg), 29).astype(np.int64)


def _to_arrow(arr: np.ndarray, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        v = arr[f.name]
        if pa.types.is_string(f.type):
            cols.append(pa.array(np.char.strip(v.astype("U")), type=f.type))
        elif pa.types.is_fixed_size_list(f.type):
            flat = pa.array(np.ascontiguousarray(v).reshape(-1), type=f.type.value_type)
            cols.append(pa.FixedSizeListArray.from_arrays(flat, f.type.list_size))
        else:
            cols.append(pa.array(v, type=f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def random_brick_rows(name: str, rows_per_brick: int, seed: int = 0, index: int = 0) -> np.ndarray:
    """Random DR9 rows of one brick (structured array, lowercase names) with realistic-ish fluxes
    (some negative), some ivar = 0 and psfdepth = 0, and random bits of every mask."""
    from legacylake.catalogs_schema.constants import mw_transmission

    arr = random_brick_table(name, rows_per_brick, "dr9-tractor", seed)
    rng = np.random.default_rng([seed, 7, index])
    n = len(arr)
    for b in ("g", "r", "i", "z", "w1", "w2", "w3", "w4"):
        if f"flux_{b}" in arr.dtype.names:
            arr[f"flux_{b}"] = rng.lognormal(0.5, 1.2, n) - 0.6
            arr[f"flux_ivar_{b}"] = np.where(rng.random(n) < 0.05, 0.0, rng.uniform(0.5, 50, n))
    arr["ebv"] = rng.uniform(0.0, 0.2, n)
    for b in ("g", "r", "i", "z", "w1", "w2", "w3", "w4"):
        if f"mw_transmission_{b}" in arr.dtype.names:
            arr[f"mw_transmission_{b}"] = mw_transmission(arr["ebv"], b)
    for col, mask in (("maskbits", "maskbits"), ("fitbits", "fitbits"), ("anymask_g", "anymask"),
                      ("allmask_r", "allmask"), ("wisemask_w1", "wisemask")):
        bits = np.array([1 << b for b in BITMASKS[mask].bits.values()])
        bits = bits[bits <= np.iinfo(arr[col].dtype).max]
        pick = rng.random((n, len(bits))) < 0.15
        arr[col] = (pick * bits).sum(axis=1).astype(arr[col].dtype)
    arr["shape_e1"] = rng.uniform(-0.6, 0.6, n)
    arr["shape_e2"] = rng.uniform(-0.6, 0.6, n)
    for b in ("g", "r", "z"):
        arr[f"psfdepth_{b}"] = np.where(rng.random(n) < 0.03, 0.0, rng.uniform(10, 5000, n))
    return arr


def random_rows(bricknames, rows_per_brick: int, seed: int = 0) -> pa.Table:
    """:func:`random_brick_rows` of several bricks as one Arrow table (DR9 schema with metadata)."""
    m = model("dr9-tractor")
    schema = pa.schema([f for f in m.arrow_schema() if f.name in {c.name for c in m.required}])
    return pa.concat_tables([_to_arrow(random_brick_rows(name, rows_per_brick, seed, i), schema)
                             for i, name in enumerate(bricknames)])


def write_fits_bricks(outdir: str | os.PathLike, bricknames, rows_per_brick: int, seed: int = 0) -> list[str]:
    """:func:`random_brick_rows` written as ``tractor/<AAA>/tractor-<brick>.fits`` (upper-case columns)."""
    import fitsio

    paths = []
    for i, name in enumerate(bricknames):
        arr = random_brick_rows(name, rows_per_brick, seed, i)
        arr.dtype.names = [c.upper() for c in arr.dtype.names]
        d = Path(outdir) / "tractor" / name[:3]
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"tractor-{name}.fits"
        fitsio.write(str(path) + ".tmp", arr, clobber=True)
        os.replace(str(path) + ".tmp", path)
        paths.append(str(path))
    return paths


def write_lake(lake: str | os.PathLike, name: str, table: pa.Table, order: int = 5,
               row_group_size: int = 2000) -> Path:
    """Write ``table`` (must have ra, dec) as HATS catalog ``lake/name`` at partition ``order``."""
    root = Path(lake) / name
    hp = healpix29(table["ra"].to_numpy(), table["dec"].to_numpy())
    table = table.add_column(0, pa.field("_healpix_29", pa.int64(),
                                         metadata={"description": "nested HEALPix index at order 29"}),
                             pa.array(hp))
    idx = np.argsort(hp, kind="stable")
    table = table.take(pa.array(idx))
    hp = hp[idx]
    pix = hp >> (2 * (29 - order))
    starts = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1]])
    ends = np.r_[starts[1:], len(pix)]
    rows = []
    for s, e in zip(starts, ends):
        p = int(pix[s])
        d = root / "dataset" / f"Norder={order}" / f"Dir={(p // 10000) * 10000}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"Npix={p}.parquet"
        pq.write_table(table.slice(s, e - s), str(path) + ".tmp", row_group_size=row_group_size,
                       compression="zstd", write_statistics=True)
        os.replace(str(path) + ".tmp", path)
        rows.append((order, p, e - s))
    pq.write_metadata(table.schema, root / "dataset" / "_common_metadata")
    with open(root / "partition_info.csv", "w") as fh:
        fh.write("Norder,Npix,num_rows\n")
        for o, p, c in rows:
            fh.write(f"{o},{p},{c}\n")
    props = {
        "obs_collection": name, "dataproduct_type": "object", "hats_nrows": str(table.num_rows),
        "hats_col_ra": "ra", "hats_col_dec": "dec", "hats_max_rows": str(max(c for *_, c in rows)),
        "hats_order": str(order), "hats_npix_suffix": ".parquet", "hats_version": "v0.1",
        "hats_builder": "legacylake.query.synthlake",
    }
    (root / "hats.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return root


def make_lake(lake: str | os.PathLike, bricknames, rows_per_brick: int = 500, name: str = "dr9",
              order: int = 5, row_group_size: int = 2000, seed: int = 0) -> Path:
    """Random DR9 rows of ``bricknames`` written as ``lake/name``; returns the catalog folder."""
    return write_lake(lake, name, random_rows(bricknames, rows_per_brick, seed), order, row_group_size)
