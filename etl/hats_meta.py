"""HATS catalog metadata: properties, partition_info.csv, _common_metadata, _metadata,
point_map.fits, each written under a temporary name and renamed (properties last)."""

from __future__ import annotations

import datetime
import os
import tempfile

import numpy as np
import pyarrow.parquet as pq

from legacylake import __version__

from .manifest import leaf_path, parse_key
from .parquet_footer import write_metadata_streaming

#: Order of point_map.fits (at most; a catalog planned at a lower order uses that).
POINT_MAP_MAX_ORDER = 8


def _replace_into(tmpdir: str, name: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.replace(os.path.join(tmpdir, name), dest)


def write_metadata(catalog_dir: str, manifest: dict, schema) -> None:
    """Rewrite every metadata file of the catalog from the manifest and the leaf footers."""
    from hats.catalog import TableProperties
    from hats.io import file_io

    parts = sorted((parse_key(k) + (v,) for k, v in manifest["partitions"].items()),
                   key=lambda p: (p[0], p[1]))
    os.makedirs(os.path.join(catalog_dir, "dataset"), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.join(catalog_dir, "legacylake")) as tmp:
        pq.write_metadata(schema, os.path.join(tmp, "_common_metadata"))
        _replace_into(tmp, "_common_metadata", os.path.join(catalog_dir, "dataset", "_common_metadata"))

        # one leaf footer at a time (memory independent of the number of partitions)
        dataset = os.path.join(catalog_dir, "dataset")
        write_metadata_streaming([(leaf_path(catalog_dir, k, n), os.path.relpath(leaf_path(catalog_dir, k, n), dataset))
                                  for k, n, _ in parts], os.path.join(tmp, "_metadata"), schema)
        _replace_into(tmp, "_metadata", os.path.join(catalog_dir, "dataset", "_metadata"))

        with open(os.path.join(tmp, "partition_info.csv"), "w") as fh:
            fh.write("Norder,Npix\n")
            for k, n, _ in parts:
                fh.write(f"{k},{n}\n")
        _replace_into(tmp, "partition_info.csv", os.path.join(catalog_dir, "partition_info.csv"))

        plan_order = int(manifest["highest_order"])
        pm_order = min(plan_order, POINT_MAP_MAX_ORDER)
        pmap = np.zeros(12 * 4 ** pm_order, dtype=np.int64)
        s = 2 * (plan_order - pm_order)
        for _, _, v in parts:
            for cell, cnt in v["cells"].items():
                pmap[int(cell) >> s] += cnt
        file_io.write_fits_image(pmap, os.path.join(tmp, "point_map.fits"))
        _replace_into(tmp, "point_map.fits", os.path.join(catalog_dir, "point_map.fits"))

        nrows = int(sum(v["rows"] for _, _, v in parts))
        releases = sorted({f["model"].split("-")[0] for f in manifest["files"].values()
                           if f.get("status") == "ingested"})
        props = TableProperties(
            catalog_name=manifest["catalog"], catalog_type="object", total_rows=nrows,
            ra_column="ra", dec_column="dec", healpix_column="_healpix_29", healpix_order=29,
            hats_max_rows=int(manifest["threshold"]), npix_suffix=".parquet",
            default_columns=None,
            moc_sky_fraction=f"{len(parts) and sum(4.0 ** -k / 12 for k, _, _ in parts):.6f}",
            hats_builder=f"legacylake {__version__}",
            hats_creation_date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M%Z"),
            legacylake_data_model=manifest["model"],
            legacylake_releases=",".join(releases),
        )
        props.to_properties_file(tmp)
        _replace_into(tmp, "properties", os.path.join(catalog_dir, "properties"))
        _replace_into(tmp, "hats.properties", os.path.join(catalog_dir, "hats.properties"))
