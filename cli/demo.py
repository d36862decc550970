"""``legacylake demo``: the whole chain on an embedded default, in a few minutes.

Simulate a patch of sky as per-brick Tractor catalogs (and, where the photometry pipeline is
installed, CCD images of a few bricks measured from pixels), build a HATS lake, run example SQL,
crossmatch with a simulated Gaia catalog and draw two PNGs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

#: The embedded default: a 0.75 x 0.5 deg patch near COSMOS (9 bricks, about 41,000 rows).
DEFAULT_BOX = (150.0, 150.75, 2.0, 2.5)
DEFAULT_SEED = 1
#: Bricks imaged and measured by the photometry-from-pixels step (those nearest the box centre).
PIXEL_BRICKS = 3
#: Size (pixels, 0.262"/px) of the central region of each of those bricks that is imaged.
PIXEL_SIZE = 700


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole chain on an embedded default and show the results",
                       description="Simulate a patch of sky, build a HATS lake, run example SQL "
                       "queries and a crossmatch, and draw a sky-density and a colour-magnitude PNG.")
    p.add_argument("--out", default="legacylake-demo", help="output directory (default: ./legacylake-demo)")
    p.add_argument("--box", nargs=4, type=float, metavar=("RA1", "RA2", "DEC1", "DEC2"),
                   default=list(DEFAULT_BOX), help=f"sky box in degrees (default: {' '.join(map(str, DEFAULT_BOX))})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation seed")
    p.add_argument("--workers", type=int, default=2, help="processes for simulation and ETL")
    p.add_argument("--no-pixels", action="store_true", help="skip the photometry-from-pixels step")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (they go to stderr, and only when it is a terminal)")
    p.add_argument("--pixel-bricks", type=int, default=PIXEL_BRICKS,
                   help=f"bricks nearest the box centre imaged and measured from pixels (default {PIXEL_BRICKS})")
    p.add_argument("--pixel-size", type=int, default=PIXEL_SIZE,
                   help=f"central PIX x PIX region of each of those bricks (default {PIXEL_SIZE})")
    p.set_defaults(func=run)


def _step(n: int, text: str) -> float:
    print(f"\n[{n}] {text}", flush=True)
    return time.time()


def _print_table(table, max_rows: int = 10) -> None:
    df = table.to_pandas()
    with __import__("pandas").option_context("display.width", 160, "display.max_columns", 20):
        print("    " + df.head(max_rows).to_string(index=False).replace("\n", "\n    "))


def run(args) -> int:
    from legacylake.errors import UserError

    ra1, ra2, dec1, dec2 = args.box
    if not (-90 <= dec1 < dec2 <= 90) or ra1 == ra2:
        raise UserError(f"--box needs RA1 != RA2 and -90 <= DEC1 < DEC2 <= 90, got {args.box}")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_all = time.time()
    print(f"legacylake demo: box ra [{ra1}, {ra2}] dec [{dec1}, {dec2}], seed {args.seed}, output in {out}")

    n = 1
    if args.pixel_bricks < 0 or not 64 <= args.pixel_size <= 3600:
        raise UserError(f"--pixel-bricks must be >= 0 and --pixel-size within 64..3600 px "
                        f"(got {args.pixel_bricks}, {args.pixel_size})")
    pixel_bricks, pixel_cat = [], None
    pixels = not args.no_pixels and args.pixel_bricks and importlib.util.find_spec("legacylake.photometry.brick.run")
    from legacylake import progress
    # one line (stderr) if the kernels the demo runs are not in numba's on-disk cache yet
    progress.numba_notice(progress.SIMULATE_KERNELS + progress.XMATCH_KERNELS
                          + (progress.PHOTOMETRY_KERNELS if pixels else ()))
    if pixels:
        pixel_bricks, pixel_cat = _pixels(n, out, args)
        n += 1

    # Catalogs for the surrounding bricks
    from legacylake.photometry.sim import catalog as simulate

    t = _step(n, "Simulate DR9 Tractor catalogs for the bricks of the box")
    # the bricks measured from pixels are not simulated again as catalogs
    names = [b for b in simulate.bricks_for_box(ra1, ra2, dec1, dec2) if b not in pixel_bricks]
    tractor_dir = os.path.join(out, "catalogs")
    # simulation is deterministic: bricks already on disk from an earlier run are kept as they are
    todo = [b for b in names if not os.path.exists(simulate.brick_path(tractor_dir, b))]
    from legacylake.progress import bar
    with bar(len(todo), "simulate", not getattr(args, "quiet", False), "brick") as pb:
        written = simulate.write_bricks(tractor_dir, todo, release="dr9", seed=args.seed, workers=args.workers,
                                        progress=lambda _rows: pb.update(1))
    rows = sum(r for _, r in written)
    print(f"    {len(names)} bricks ({len(names) - len(todo)} already on disk), {rows:,} rows written "
          f"in {time.time() - t:.1f} s -> {tractor_dir}/tractor/")
    n += 1

    # The lake
    from legacylake.etl import build, verify

    t = _step(n, "Build the HATS lake (etl build), exactly once")
    lake = os.path.join(out, "lake")
    # the measured catalogs' tree only (not run-brick's logs and metrics side files)
    sources = [tractor_dir] + ([os.path.join(pixel_cat, "tractor")] if pixel_cat else [])
    summary = build(sources, lake, "dr9", workers=args.workers,
                    progress=not getattr(args, "quiet", False) and sys.stderr.isatty())
    for line in summary.lines():
        print(f"    {line}")
    rep = verify(lake, "dr9")
    print(f"    verify: {'ok' if rep.ok else 'PROBLEMS: ' + '; '.join(rep.problems)} ({time.time() - t:.1f} s)",
          file=sys.stdout if rep.ok else sys.stderr)
    status = 0 if rep.ok else 1
    n += 1

    # SQL
    from legacylake.query import query
    from legacylake.query import connect

    con = connect(lake)
    ra_c, dec_c = (ra1 + ra2) / 2 % 360, (dec1 + dec2) / 2
    examples = [
        ("Rows and primaries per type",
         "SELECT type, count(*) AS n, sum(brick_primary::INT) AS primary_n FROM dr9 GROUP BY type ORDER BY n DESC"),
        ("Cone search: 2 arcmin around the box centre, brightest first",
         f"SELECT objid, brickname, type, round(ra, 5) AS ra, round(dec, 5) AS dec, "
         f"round(flux_to_mag(flux_r), 2) AS r_mag FROM cone('dr9', {ra_c}, {dec_c}, {2 / 60}) "
         f"WHERE brick_primary ORDER BY flux_r DESC LIMIT 8"),
        ("Dereddened colour-magnitude selection, maskbits by name (DESI-like imaging mask)",
         "SELECT count(*) AS n, round(median(dered_mag(flux_r, mw_transmission_r)), 2) AS median_r, "
         "round(median(dered_mag(flux_g, mw_transmission_g) - dered_mag(flux_r, mw_transmission_r)), 3) AS median_g_r "
         "FROM dr9 WHERE brick_primary AND no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER') "
         "AND snr(flux_g, flux_ivar_g) > 5 AND snr(flux_r, flux_ivar_r) > 5 "
         "AND dered_mag(flux_r, mw_transmission_r) < 23 AND type <> 'PSF'"),
        ("Density map: primary sources per nested HEALPix nside-4096 pixel (Data Lab's nest4096)",
         "SELECT nest4096, count(*) AS n FROM dr9_derived WHERE brick_primary "
         "GROUP BY nest4096 ORDER BY n DESC LIMIT 5"),
    ]
    for title, sql in examples:
        t = _step(n, title)
        print(f"    SQL> {sql}")
        _print_table(query(con, sql))
        print(f"    ({(time.time() - t) * 1000:.0f} ms)")
        n += 1

    # Crossmatch
    from legacylake.query import xmatch

    t = _step(n, "Crossmatch with a simulated Gaia catalog (nearest within 1 arcsec)")
    gaia = os.path.join(out, "gaia.parquet")
    ngaia = simulate.write_external(gaia, "gaia", (ra1, ra2, dec1, dec2), seed=args.seed)
    matches = xmatch(gaia, lake, "dr9", radius_arcsec=1.0, mode="nearest",
                     columns=["release", "brickid", "objid", "ra", "dec", "type", "ref_id", "brick_primary"])
    import numpy as np

    sep = matches.column("sep_arcsec").to_numpy()
    rid = "ref_id_lake" if "ref_id_lake" in matches.column_names else "ref_id"  # suffixed only on a collision
    same = np.mean(matches.column("source_id").to_numpy() == matches.column(rid).to_numpy()) \
        if rid in matches.column_names else float("nan")
    xm_path = os.path.join(out, "gaia_x_dr9.parquet")
    import pyarrow.parquet as pq

    pq.write_table(matches, xm_path + ".tmp")
    os.replace(xm_path + ".tmp", xm_path)
    print(f"    {matches.num_rows:,} of {ngaia:,} Gaia stars matched, median separation "
          f"{np.median(sep) * 1000:.1f} mas, Tractor ref_id == Gaia source_id for {same:.1%} of the matches; "
          f"{time.time() - t:.1f} s -> {xm_path}")
    n += 1

    # Pictures
    t = _step(n, "Draw a sky-density PNG and a colour-magnitude PNG")
    pngs = _plots(con, out, pixel_bricks, names, args.pixel_size)
    for p in pngs:
        print(f"    {p}")
    print(f"    ({time.time() - t:.1f} s)")

    print(f"\nDone in {time.time() - t_all:.0f} s. Everything is in {out}:")
    print("  catalogs/tractor/<AAA>/tractor-<brick>.fits   simulated DR9 Tractor catalogs")
    if pixel_cat:
        print(f"  pixels/images/<brick>, pixels/catalog         simulated CCD images of {', '.join(pixel_bricks)} "
              f"and their measured catalogs")
    print(f"  lake/dr9/                                     the HATS collection: current snapshot + 10\" margin "
          f"(lsdb.open_catalog, hats, DuckDB, Spark; `legacylake etl history --lake {lake} --catalog dr9`)")
    print("  gaia.parquet, gaia_x_dr9.parquet              the external catalog and the crossmatch")
    print("\nTry next:")
    print(f"  legacylake sql --lake {lake} \"SELECT type, count(*) FROM dr9 WHERE brick_primary GROUP BY type\"")
    print(f"  legacylake cone --lake {lake} --catalog dr9 {ra_c} {dec_c} 0.01")
    print(f"  legacylake xmatch --lake {lake} --catalog dr9 {gaia} --radius 1 --nearest --out matches.parquet")
    print("  legacylake sql --functions                 # the SQL function library")
    print(f"  legacylake serve --lake {lake} --alias ls_dr9.tractor=dr9   # TAP for TOPCAT/pyvo: http://127.0.0.1:8321/")
    print(f"  python -c \"import lsdb; print(lsdb.open_catalog('{lake}/dr9'))\"")
    return status


def _pixels(n: int, out: str, args) -> tuple[list[str], str]:
    """Simulate CCD images of the centres of the ``--pixel-bricks`` bricks nearest the box centre
    and measure their catalogs from the pixels (run-brick), each validated against its truth.

    Returns (bricknames, catalog directory holding tractor/<AAA>/tractor-<brick>.fits)."""
    import numpy as np

    from legacylake.catalogs_schema import bricks
    from legacylake.photometry.brick import validate as brick_validate
    from legacylake.photometry.brick import run as runbrick
    from legacylake.photometry.sim import images as sim_images
    from legacylake.photometry.sim import catalog as simulate

    ra1, ra2, dec1, dec2 = args.box
    ra_c, dec_c = (ra1 + ra2) / 2 % 360, (dec1 + dec2) / 2
    names = simulate.bricks_for_box(ra1, ra2, dec1, dec2)
    rows = [bricks.brick(b) for b in names]
    dra = (np.array([r["ra"] for r in rows]) - ra_c + 180.0) % 360.0 - 180.0
    d2 = (dra * np.cos(np.deg2rad(dec_c))) ** 2 + (np.array([r["dec"] for r in rows]) - dec_c) ** 2
    chosen = [names[i] for i in np.argsort(d2, kind="stable")[: args.pixel_bricks]]
    size = args.pixel_size
    t = _step(n, f"Photometry from pixels: simulated g, r, z exposures of {len(chosen)} bricks "
                 f"({', '.join(chosen)}; the central {size} x {size} px of each), then photometry run-brick")
    cat_dir = os.path.join(out, "pixels", "catalog")
    from legacylake.progress import bar
    show = not getattr(args, "quiet", False)
    for brick in chosen:
        tb = time.time()
        img_dir = os.path.join(out, "pixels", "images", brick)
        done = os.path.join(cat_dir, "tractor", brick[:3], f"tractor-{brick}.fits")
        if not os.path.exists(done):
            with bar(9, f"exposures {brick}", show, "exposure") as pb:  # g, r, z x 3 exposures
                sim_images.simulate_images(brick, img_dir, seed=args.seed, size=size, workers=args.workers,
                                           progress=pb.update)
            runbrick.run_brick(brick, img_dir, cat_dir, workers=args.workers, progress=show)
        v = brick_validate.validate(img_dir, cat_dir, brick)
        print(f"    {brick}: {v['n_rows']} sources in the catalog, {v['n_catalog']} of them more than "
              f"{brick_validate.EDGE_PX} px inside the imaged edge; against the truth there: completeness at S/N > 8 "
              f"{v['completeness_sn8']:.1%}, purity {v['purity']:.1%}, star/galaxy at S/N > 50 "
              f"{v['star_galaxy_sn50']:.1%} ({time.time() - tb:.0f} s)")
    print(f"    catalogs: {cat_dir}/tractor/ ({time.time() - t:.0f} s)")
    return chosen, cat_dir


def _plots(con, out: str, pixel_bricks: list[str], sim_bricks=(), pixel_size: int = PIXEL_SIZE) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from legacylake.catalogs_schema import bricks
    from legacylake.demo_plots import cmd_figure, pixel_squares, sky_png

    sky = con.sql("SELECT ra, dec FROM dr9 WHERE brick_primary").to_arrow_table()
    areas = [(b["ra1"], b["ra2"], b["dec1"], b["dec2"]) for b in map(bricks.brick, sim_bricks)]
    squares = pixel_squares(pixel_bricks, pixel_size) if pixel_bricks else []
    sky_path = os.path.join(out, "sky_density.png")
    sky_png(sky_path, sky.column("ra").to_numpy(), sky.column("dec").to_numpy(), areas, squares)

    cmd = con.sql(
        "SELECT dered_mag(flux_r, mw_transmission_r) AS r, "
        "dered_mag(flux_g, mw_transmission_g) - dered_mag(flux_r, mw_transmission_r) AS g_r, type = 'PSF' AS psf "
        "FROM dr9 WHERE brick_primary AND no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER') "
        "AND snr(flux_g, flux_ivar_g) > 5 AND snr(flux_r, flux_ivar_r) > 5").to_arrow_table()
    r, gr, psf = (cmd.column(c).to_numpy(zero_copy_only=False) for c in ("r", "g_r", "psf"))
    fig, _, _ = cmd_figure(r, gr, psf)
    cmd_png = os.path.join(out, "colour_magnitude.png")
    fig.savefig(cmd_png, dpi=100)
    plt.close(fig)
    return [sky_path, cmd_png]
