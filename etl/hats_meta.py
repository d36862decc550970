"""HATS catalog metadata of a snapshot being assembled: properties, partition_info.csv,
_common_metadata, _metadata and point_map.fits of the primary catalog, and the same (without
the point map) for its margin catalog.

The snapshot is in staging while these are written and is published as a whole, so the
files are written in place (no reader can see them before the snapshot is complete).
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import pyarrow.parquet as pq

from legacylake._version import __version__

from legacylake.etl.layout import leaf_relpath
from legacylake.etl.manifest import parse_key
from legacylake.etl.parquet_footer import write_metadata_streaming

#: Order of point_map.fits (at most; a catalog planned at a lower order uses that).
POINT_MAP_MAX_ORDER = 8


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M%Z")


def _partition_files(hats_dir: str, parts: list[tuple[int, int]]) -> None:
    """partition_info.csv: one (Norder, Npix) line per leaf."""
    with open(os.path.join(hats_dir, "partition_info.csv"), "w") as fh:
        fh.write("Norder,Npix\n")
        for k, n in parts:
            fh.write(f"{k},{n}\n")


def _dataset_metadata(hats_dir: str, parts: list[tuple[int, int]], schema) -> None:
    ds = os.path.join(hats_dir, "dataset")
    os.makedirs(ds, exist_ok=True)
    pq.write_metadata(schema, os.path.join(ds, "_common_metadata"))
    # one leaf footer at a time (memory independent of the number of partitions)
    write_metadata_streaming([(os.path.join(hats_dir, leaf_relpath(k, n)), os.path.relpath(leaf_relpath(k, n), "dataset"))
                              for k, n in parts], os.path.join(ds, "_metadata"), schema)


def write_metadata(hats_dir: str, manifest: dict, schema) -> None:
    """Write every metadata file of the primary catalog at ``hats_dir`` from the manifest and
    the leaf footers."""
    from hats.catalog import TableProperties
    from hats.io import file_io

    parts = sorted((parse_key(k) + (v,) for k, v in manifest["partitions"].items()),
                   key=lambda p: (p[0], p[1]))
    _dataset_metadata(hats_dir, [(k, n) for k, n, _ in parts], schema)
    _partition_files(hats_dir, [(k, n) for k, n, _ in parts])

    plan_order = int(manifest["highest_order"])
    pm_order = min(plan_order, POINT_MAP_MAX_ORDER)
    pmap = np.zeros(12 * 4 ** pm_order, dtype=np.int64)
    s = 2 * (plan_order - pm_order)
    for _, _, v in parts:
        for cell, cnt in v["cells"].items():
            pmap[int(cell) >> s] += cnt
    file_io.write_fits_image(pmap, os.path.join(hats_dir, "point_map.fits"))

    nrows = int(sum(v["rows"] for _, _, v in parts))
    releases = sorted({f["model"].split("-")[0] for f in manifest["files"].values()
                       if f.get("status") == "ingested"})
    props = TableProperties(
        catalog_name=manifest["catalog"], catalog_type="object", total_rows=nrows,
        ra_column="ra", dec_column="dec", healpix_column="_healpix_29", healpix_order=29,
        hats_max_rows=int(manifest["threshold"]), npix_suffix=".parquet",
        default_columns=None,
        moc_sky_fraction=f"{len(parts) and sum(4.0 ** -k / 12 for k, _, _ in parts):.6f}",
        hats_builder=f"legacylake {__version__}", hats_creation_date=_now(),
        legacylake_data_model=manifest["model"],
        legacylake_releases=",".join(releases),
    )
    props.to_properties_file(hats_dir)


def write_margin_metadata(margin_dir: str, name: str, primary_url: str, parts: dict, schema,
                          arcsec: float, order: int) -> None:
    """Metadata of a margin catalog; ``parts`` maps (order, npix) -> rows (non-empty leaves)."""
    from hats.catalog import TableProperties

    keys = sorted(parts)
    _dataset_metadata(margin_dir, keys, schema)
    _partition_files(margin_dir, keys)
    TableProperties(
        catalog_name=name, catalog_type="margin", total_rows=int(sum(parts.values())),
        ra_column="ra", dec_column="dec", healpix_column="_healpix_29", healpix_order=29,
        primary_catalog=primary_url, margin_threshold=float(arcsec), npix_suffix=".parquet",
        hats_builder=f"legacylake {__version__}", hats_creation_date=_now(),
        legacylake_margin_order=int(order),
    ).to_properties_file(margin_dir)
