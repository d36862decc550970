"""Handler of ``legacylake simulate images`` (registered in :mod:`.simulate_cli`)."""

from __future__ import annotations

from legacylake.errors import UserError


def run(args) -> int:
    from legacylake.catalogs_schema import bricks

    from tqdm import tqdm

    from legacylake.photometry.sim.images import simulate_images
    try:
        bricks.brick(args.brick)
    except KeyError as exc:
        raise UserError(f"--brick: {exc.args[0]}") from None
    if args.nexp < 1:
        raise UserError(f"--nexp must be >= 1, got {args.nexp}")
    bad = set(args.bands) - set("grz")
    if bad or not args.bands:
        raise UserError(f"--bands {args.bands!r}: use letters of grz")
    with tqdm(total=len(args.bands) * args.nexp, unit="exposure", disable=None) as bar:
        s = simulate_images(args.brick, args.out, args.bands, args.nexp, args.seed, args.density, args.size,
                            args.workers, bar.update)
    print(f"simulate images: brick {args.brick}, {len(s['exposures'])} exposures ({args.bands} x {args.nexp}), "
          f"{s['truth_rows']} truth sources, {s['gaia_rows']} Gaia stars, {s['seconds']:.1f} s -> {args.out}/images/ "
          f"(+ ccds-, truth-, gaia-{args.brick}.fits)")
    return 0
