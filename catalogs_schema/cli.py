"""``legacylake schema ...`` and ``legacylake bricks ...``."""

from __future__ import annotations

import argparse
import os
import sys

from legacylake.errors import UserError

from legacylake.catalogs_schema.model_names import MODEL_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="show data models, check a catalog file against them")
    ss = p.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    s = ss.add_parser("show", help="columns of a data model with types and units")
    s.add_argument("name", help=f"data model: {', '.join(MODEL_NAMES)}")
    s.add_argument("--descriptions", action="store_true", help="also print each column's description")
    s.set_defaults(func=_show)
    s = ss.add_parser("list", help="the data models")
    s.set_defaults(func=_list)
    s = ss.add_parser("check", help="which data model a FITS catalog is, and what differs",
                      description="Report per file (stdout): the detected data model and the differences. "
                      "Errors (unreadable files) and the final verdict of a failed check go to stderr; "
                      "exit status 1 if any file is unreadable or does not conform.")
    s.add_argument("files", nargs="+", metavar="FILE.fits")
    s.add_argument("--model", help="check against this model instead of the detected one")
    s.add_argument("--verbose", action="store_true", help="list absent optional columns")
    s.set_defaults(func=_check)

    p = sub.add_parser("bricks", help="the 662,174-brick grid: look up, export")
    bs = p.add_subparsers(dest="bricks_command", metavar="ACTION", required=True)
    s = bs.add_parser("lookup", help="brick containing RA DEC (deg), or a brick by name/id")
    s.add_argument("ra", help="RA in degrees, or a brick name / brickid")
    s.add_argument("dec", nargs="?", type=float, help="Dec in degrees")
    s.set_defaults(func=_lookup)
    s = bs.add_parser("export", help="write the whole grid as a survey-bricks FITS table")
    s.add_argument("out", metavar="OUT.fits")
    s.set_defaults(func=_export)


def _model_or_error(name: str):
    from legacylake.catalogs_schema.columns import model

    try:
        return model(name)
    except KeyError as exc:
        raise UserError(exc.args[0]) from None


def _list(args) -> int:
    from legacylake.catalogs_schema.columns import model

    for name in MODEL_NAMES:
        m = model(name)
        print(f"{name:14s} {len(m.columns):4d} columns ({len(m.required)} required)")
    return 0


def _show(args) -> int:
    m = _model_or_error(args.name)
    print(f"# {m.name}: {len(m.columns)} columns")
    print(f"{'name':36s} {'type':12s} {'arrow':28s} {'unit':16s}")
    for c in m.columns:
        opt = "" if c.required else " (optional)"
        line = f"{c.name:36s} {c.type_label:12s} {str(c.arrow_type):28s} {c.unit or '-':16s}{opt}"
        if args.descriptions:
            line += f"  {c.description}"
        print(line)
    return 0


def _check(args) -> int:
    from legacylake.catalogs_schema.fitsfile import NotACatalogError, table_header
    from legacylake.catalogs_schema.validate import detect, validate

    status = bad = 0
    for path in args.files:
        try:
            header, ext = table_header(path)
            det = detect(header)
        except (NotACatalogError, ValueError) as exc:
            print(f"{path}: error: {exc}" if not str(exc).startswith(path) else f"error: {exc}", file=sys.stderr)
            status = 1
            bad += 1
            continue
        name = args.model or det.model
        _model_or_error(name)
        rep = validate(header, name)
        nrows = int(header.get("NAXIS2", 0))
        verdict = "conforms to" if rep.ok else "does NOT conform to"
        print(f"{path}: {rep.release} {rep.kind} ({rep.model}), HDU {ext}, {nrows} rows: {verdict} {rep.model}")
        base = os.path.basename(path)
        if base.startswith("tractor-") and rep.kind == "sweep":
            print("  note: named like a tractor catalog, but has the sweep column layout (no brick_primary, bx, by)")
        for line in rep.lines(args.verbose):
            print(f"  {line}")
        if not rep.ok:
            status = 1
            bad += 1
    if status:
        print(f"legacylake schema check: FAILED: {bad} of {len(args.files)} file(s) unreadable or not conforming",
              file=sys.stderr)
    return status


def _lookup(args) -> int:
    import numpy as np

    from legacylake.catalogs_schema import bricks

    if args.dec is None:
        try:
            b = bricks.brick(args.ra)
        except KeyError as exc:
            raise UserError(exc.args[0]) from None
    else:
        try:
            ra = float(args.ra)
        except ValueError:
            raise UserError(f"RA {args.ra!r} is not a number") from None
        if not (np.isfinite(ra) and np.isfinite(args.dec) and -90 <= args.dec <= 90):
            raise UserError(f"need finite RA and -90 <= DEC <= 90, got {args.ra} {args.dec}")
        b = bricks.brick(int(bricks.brickid_of(ra, args.dec)))
    print(f"brickname {b['brickname']}")
    print(f"brickid   {b['brickid']}")
    print(f"brickrow  {b['brickrow']}  brickcol {b['brickcol']}  brickq {b['brickq']}")
    print(f"centre    ra {b['ra']:.6f}  dec {b['dec']:.6f}")
    print(f"bounds    ra [{b['ra1']:.6f}, {b['ra2']:.6f})  dec [{b['dec1']:.6f}, {b['dec2']:.6f})")
    return 0


def _export(args) -> int:
    import numpy as np

    from legacylake.catalogs_schema import bricks

    import fitsio

    g = bricks.grid()
    cols = ["brickname", "brickid", "brickq", "brickrow", "brickcol", "ra", "dec", "ra1", "ra2", "dec1", "dec2"]
    arr = np.zeros(len(g["brickid"]), dtype=[(c, g[c].dtype if c != "brickname" else "S8") for c in cols])
    for c in cols:
        arr[c] = g[c]
    tmp = args.out + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    fitsio.write(tmp, arr, extname="BRICKS", clobber=True)
    os.replace(tmp, args.out)
    print(f"wrote {len(arr)} bricks to {args.out}")
    return 0
