"""``legacylake demo``: a guided run on an embedded default."""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole chain on an embedded default and show the results")
    p.add_argument("--out", default="legacylake-demo", help="output directory (default: ./legacylake-demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    from legacylake.catalogs_schema import MASKBITS, bricks, constants, model

    t0 = time.time()
    print("legacylake demo\n")
    print("1. The brick grid")
    g = bricks.grid()
    print(f"   {len(g['brickid']):,} bricks, total area {bricks.area_deg2().sum():,.3f} deg^2")
    for ra, dec in [(244.7, 12.0), (0.1, -0.5), (150.1, 2.2)]:
        b = bricks.brick(int(bricks.brickid_of(ra, dec)))
        print(f"   ({ra:7.3f}, {dec:6.2f}) -> brick {b['brickname']} (id {b['brickid']}), "
              f"ra [{b['ra1']:.4f}, {b['ra2']:.4f}) dec [{b['dec1']:.3f}, {b['dec2']:.3f})")
    print("\n2. The DR9 Tractor data model")
    m = model("dr9-tractor")
    print(f"   {len(m.columns)} columns; e.g.")
    for name in ["flux_g", "flux_ivar_g", "apflux_r", "maskbits", "shape_r", "lc_flux_w1"]:
        c = m[name]
        print(f"   {c.name:14s} {c.type_label:12s} {c.unit or '-':14s} {c.description}")
    print("\n3. Bitmasks and constants")
    print(f"   DESI imaging mask BRIGHT,GALAXY,CLUSTER = {MASKBITS.mask('BRIGHT,GALAXY,CLUSTER')}")
    print(f"   maskbits 4098 = {MASKBITS.decode(4098)}")
    print(f"   R(g,r,z) = {constants.EXTINCTION_R['g']}, {constants.EXTINCTION_R['r']}, {constants.EXTINCTION_R['z']}")
    print(f"\ndone in {time.time() - t0:.1f} s. Try: legacylake schema show dr9-tractor; "
          "legacylake bricks lookup 150.1 2.2; legacylake --help")
    return 0
