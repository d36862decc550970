"""The end of a build: margins, the new snapshot's HATS metadata and manifest, and its
publication by one atomic rename (:mod:`legacylake.etl.snapshot`)."""

from __future__ import annotations

import os

import numpy as np

from legacylake.etl import layout, snapshot
from legacylake.etl import manifest as mf
from legacylake.etl.crash import crash_point
from legacylake.etl.hats_meta import write_metadata
from legacylake.etl.margin_write import write_margins
from legacylake.etl.read import lake_schema


def commit_build(cat_dir, catalog, cur, man, new, settings, results, plan, summary, rejects, staging,
            runner, row_group_rows):
    """Assemble the new snapshot in ``staging`` and publish it."""
    leaf_res = {}
    for r in results:
        leaf_res.update(r.get("leaves", {}))
    existing, touched, acc = plan["existing"], plan["touched"], plan["acc"]
    new_man = {**man, **{k: settings[k] for k in ("model", "threshold", "highest_order", "margin_arcsec")},
               "files": dict(man["files"]), "partitions": dict(man["partitions"])}
    version = max([cur.version if cur else 0] + layout.snapshot_versions(cat_dir)) + 1
    root = os.path.join(staging, "snapshot")
    primary = os.path.join(root, catalog)
    touched_set = set(touched)
    for leaf in touched:
        key = mf.pixel_key(*leaf)
        res = leaf_res.get(leaf)
        if res is None:  # leaf ended up empty
            new_man["partitions"].pop(key, None)
            continue
        dst = os.path.join(primary, layout.leaf_relpath(*leaf))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(res["file"], dst)
        new_man["partitions"][key] = {"rows": res["rows"], "cells": res["cells"]}
    leaves_now = set(plan["leaves"])
    for leaf in existing:
        if leaf not in leaves_now:
            new_man["partitions"].pop(mf.pixel_key(*leaf), None)
            summary.partitions_deleted += 1
    final = sorted(mf.parse_key(k) for k in new_man["partitions"])
    for leaf in final:
        if leaf not in touched_set:
            snapshot.link_or_copy(cur.leaf(*leaf), os.path.join(primary, layout.leaf_relpath(*leaf)))
            summary.leaves_linked += 1
    for f in new:
        a = acc[f.path]
        f.hash = a.get("hash") or f.hash
        if f.path in man["files"] and man["files"][f.path].get("status") == "ingested":
            summary.replaced.append(f.path)
        else:
            summary.ingested.append(f.path)
        new_man["files"][f.path] = {
            "size": f.size, "mtime_ns": f.mtime_ns, "hash": f.hash, "rows": f.rows,
            "rows_ingested": a["written"], "bad_positions": a["bad"], "model": f.model,
            "status": "ingested", "bricks": {str(b): c for b, c in a["bricks"].items()},
            "footprint": np.asarray(f.footprint).tolist() if f.exact else None,
            "box": list(f.box) if f.box else None,
        }
        summary.rows += a["written"]
        summary.bad_position_rows += a["bad"]
        summary.file_reads += a["reads"]
        if a["bad"]:
            rejects.append((f.path, f"{f.path}: {a['bad']} row(s) with non-finite or out-of-range "
                                    f"ra/dec not ingested (the other {a['written']} rows are)"))
    for p, reason in rejects:
        if p not in new_man["files"] or new_man["files"][p].get("status") != "ingested":
            new_man["files"][p] = {"status": "rejected", "reason": reason}
    summary.partitions_written = len([l for l in touched if l in leaf_res])
    summary.peak_pending_rows = max((r.get("peak_pending_rows", 0) for r in results), default=0)
    summary.spilled_rows = sum(r.get("spilled_rows", 0) for r in results)
    summary.seam_files = sum(len(r["files"]) for r in results if "shards" in r)
    summary.partitions = len(new_man["partitions"])
    summary.total_rows = sum(v["rows"] for v in new_man["partitions"].values())

    write_metadata(primary, new_man, lake_schema(settings["model"]))
    mname, summary.margins_written = write_margins(root, catalog, cur, man, new_man, settings, final,
                                                   {l for l in touched if l in leaf_res}, plan["changed_cells"],
                                                   results, runner, row_group_rows)
    summary.margin_rows = sum(new_man["margin_partitions"].values())
    crash_point("margins")
    commit = {"version": version, "created": snapshot.now_utc(), "parent": cur.version if cur else None,
              "files_added": len(summary.ingested), "files_replaced": len(summary.replaced),
              "files_rejected": len(rejects), "rows_added": summary.rows, "rows": summary.total_rows,
              "partitions": summary.partitions, "partitions_written": summary.partitions_written,
              "leaves_linked": summary.leaves_linked, "margin_rows": summary.margin_rows}
    summary.bytes_written = snapshot.finish(root, new_man, man, commit)
    crash_point("snapshot")
    snapshot.publish(cat_dir, root, catalog, version, mname, crash_point)
    summary.snapshot = version
    snapshot.clear_staging(staging)
