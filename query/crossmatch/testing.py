"""A small HATS catalog writer for crossmatch tests and benchmarks.

Writes the lake layout the ETL writes (``LAKE/NAME/hats.properties``, ``partition_info.csv``,
``dataset/_common_metadata``, ``dataset/Norder=k/Dir=d/Npix=n.parquet`` with ``_healpix_29``
first, rows sorted, several row groups per leaf), partitioned adaptively so that no leaf
holds more than ``max_rows`` rows. Once ``legacylake.etl.build`` exists tests may use it
instead; the crossmatch only relies on the layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from legacylake.query.crossmatch.buckets import healpix29


def random_lake_table(rng: np.random.Generator, n: int, half_width_deg: float = 2.0) -> pa.Table:
    """``n`` uniform lake rows in a box of +-``half_width_deg`` around (0, 0) (across RA = 0/360),
    with the key columns a crossmatch returns (release, brickid = row index, objid)."""
    ra = rng.uniform(-half_width_deg, half_width_deg, n) % 360
    dec = rng.uniform(-half_width_deg, half_width_deg, n)
    return pa.table({"ra": ra, "dec": dec, "release": np.full(n, 9010, np.int16),
                     "brickid": np.arange(n, dtype=np.int32), "objid": np.zeros(n, np.int32)})


def plan_partitions(hp29: np.ndarray, max_rows: int, lowest: int = 0, highest: int = 7) -> list[tuple[int, int]]:
    """(order, pixel) leaves covering the rows, none above ``max_rows`` unless at ``highest``."""
    todo = [(lowest, int(p)) for p in np.unique(hp29 >> (2 * (29 - lowest)))]
    out = []
    while todo:
        o, p = todo.pop()
        s = 2 * (29 - o)
        lo, hi = np.searchsorted(hp29, [p << s, (p + 1) << s])
        n = hi - lo
        if n == 0:
            continue
        if n <= max_rows or o >= highest:
            out.append((o, p))
        else:
            todo.extend((o + 1, 4 * p + c) for c in range(4))
    return sorted(out, key=lambda op: op[1] << (2 * (29 - op[0])))


def write_test_lake(table, lake: str | os.PathLike, catalog: str, *, max_rows: int = 20_000,
                    lowest: int = 0, highest: int = 7, row_group_rows: int = 4_000,
                    ra_col: str = "ra", dec_col: str = "dec", properties: dict | None = None) -> Path:
    """Write ``table`` (Arrow table or pandas DataFrame with ra/dec in degrees) as ``lake/catalog``."""
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    ra = table.column(ra_col).to_numpy()
    dec = table.column(dec_col).to_numpy()
    hp = healpix29(ra, dec)
    srt = np.argsort(hp, kind="stable")
    hp = hp[srt]
    table = table.take(srt)
    if "_healpix_29" in table.schema.names:
        table = table.drop(["_healpix_29"])
    table = table.add_column(0, "_healpix_29", pa.array(hp, pa.int64()))
    root = Path(lake) / catalog
    ds = root / "dataset"
    ds.mkdir(parents=True, exist_ok=True)
    leaves = plan_partitions(hp, max_rows, lowest, highest)
    for o, p in leaves:
        s = 2 * (29 - o)
        lo, hi = np.searchsorted(hp, [p << s, (p + 1) << s])
        d = ds / f"Norder={o}" / f"Dir={(p // 10000) * 10000}"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".Npix={p}.parquet.tmp"
        pq.write_table(table.slice(lo, hi - lo), tmp, row_group_size=row_group_rows)
        os.replace(tmp, d / f"Npix={p}.parquet")
    pq.write_metadata(table.schema, ds / "_common_metadata")
    with open(root / "partition_info.csv", "w") as fh:
        fh.write("Norder,Npix\n")
        for o, p in leaves:
            fh.write(f"{o},{p}\n")
    props = {
        "obs_collection": catalog, "dataproduct_type": "object", "hats_nrows": str(table.num_rows),
        "hats_col_ra": ra_col, "hats_col_dec": dec_col, "hats_col_healpix": "_healpix_29",
        "hats_col_healpix_order": "29", "hats_npix_suffix": ".parquet", "hats_max_rows": str(max_rows),
        "hats_order": str(max(o for o, _ in leaves)),
    }
    props.update(properties or {})
    (root / "hats.properties").write_text("#HATS catalog\n" + "".join(f"{k}={v}\n" for k, v in props.items()))
    return root
