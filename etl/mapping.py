"""Documented mappings of an older data model's columns onto a catalog's model (``--map-to``).

A catalog holds one data model. ``legacylake etl build --map-to dr9`` lets a DR9 catalog take
DR4 Tractor files too, converting their columns as below (one rule per DR9 column; every
other DR9 column a DR4 file has is copied, cast to the DR9 type):

DR4 -> DR9 (``dr4-tractor`` -> ``dr9-tractor``)
  type          SIMP -> REX (DR4's round exponential with r_e fixed at 0.45 arcsec; DR9's REX
                has r_e free); COMP -> DEV if fracdev >= 0.5 else EXP (the dominant component);
                PSF, DEV, EXP unchanged.
  shape_r, shape_e1, shape_e2 and their _ivar
                from shapedev_* for DEV (and COMP with fracdev >= 0.5), from shapeexp_* for
                EXP, SIMP and COMP with fracdev < 0.5; 0 for PSF (as DR9 writes for PSF).
  sersic        DEV 4, EXP/REX 1, PSF 0 (the values DR9 gives those types); sersic_ivar 0.
  release       int32 -> int16 (DR4 codes, e.g. 4000, are kept).
  lc_* (WISE light curves)
                DR4's 7 epochs fill the first 7 of DR9's 15; the other 8 are 0 (no epoch:
                lc_nobs 0, lc_flux_ivar 0); lc_mjd float32 -> float64.
  not in DR4    maskbits, fitbits, ref_cat/ref_id/Gaia/pm/parallax columns, fiberflux,
                fibertotflux, apflux_blobresid/masked, apflux_*_w1-4, nea, blob_nea,
                psfdepth_w1-4, wise_x/y, lc_epoch_index: null (no value; never a fake 0).
  dropped       fracdev, fracdev_ivar, shapeexp_*, shapedev_* (after use above) and every
                u, i and Y band column (DR4 observed g, r, z only; those columns are empty).

Rows keep their own ``release`` (so (release, brickid, objid) stays unique across releases);
the manifest records each file's own data model and hats.properties lists both releases.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema import model

#: (from model, to model) pairs with a mapping.
MAPPINGS = {("dr4-tractor", "dr9-tractor")}

_SHAPE = ("r", "r_ivar", "e1", "e1_ivar", "e2", "e2_ivar")


def target_model(map_to: str, models: set[str]) -> str:
    """The catalog model a ``--map-to`` value names: a model name, or a release (``dr9``)
    taken with the kind (tractor/sweep) of the inputs' models."""
    from legacylake.catalogs_schema import MODEL_NAMES
    from legacylake.errors import UserError

    m = map_to.lower()
    if m in MODEL_NAMES:
        return m
    kinds = {x.split("-", 1)[1] for x in models} or {"tractor"}
    cands = [f"{m}-{k}" for k in sorted(kinds) if f"{m}-{k}" in MODEL_NAMES]
    if len(cands) != 1:
        raise UserError(f"--map-to {map_to}: not a data model or release (models: {', '.join(MODEL_NAMES)})")
    return cands[0]


def can_map(src: str, dst: str) -> bool:
    return src == dst or (src, dst) in MAPPINGS


def describe() -> str:
    return ", ".join(f"{a} -> {b}" for a, b in sorted(MAPPINGS))


def map_columns(data: dict, src: str, dst: str) -> dict:
    """Columns (lowercase name -> numpy array) of ``src`` rows converted to model ``dst``;
    columns ``dst`` lacks are dropped, columns it has and ``src`` lacks are left out (the
    writer fills them with nulls)."""
    if src == dst:
        return data
    if (src, dst) != ("dr4-tractor", "dr9-tractor"):
        raise ValueError(f"no mapping from {src} to {dst}")
    return _dr4_to_dr9(data, dst)


def _dr4_to_dr9(data: dict, dst: str) -> dict:
    dm = model(dst)
    t = np.char.strip(np.char.upper(np.asarray(data["type"]).astype("U4")))
    fracdev = np.asarray(data["fracdev"], np.float32)
    dev = (t == "DEV") | ((t == "COMP") & (fracdev >= 0.5))
    exp = (t == "EXP") | (t == "SIMP") | ((t == "COMP") & (fracdev < 0.5))
    new_type = t.copy()
    new_type[t == "SIMP"] = "REX"
    new_type[(t == "COMP") & dev] = "DEV"
    new_type[(t == "COMP") & exp] = "EXP"
    out = {}
    for c in dm.columns:
        n = c.name
        if n == "type":
            out[n] = new_type.astype(f"S{c.width}")
        elif n.startswith("shape_"):
            part = n[len("shape_"):]
            v = np.zeros(len(t), np.float32)
            v[dev] = np.asarray(data[f"shapedev_{part}"], np.float32)[dev]
            v[exp] = np.asarray(data[f"shapeexp_{part}"], np.float32)[exp]
            out[n] = v
        elif n == "sersic":
            out[n] = np.where(dev, 4.0, np.where(exp, 1.0, 0.0)).astype(np.float32)
        elif n == "sersic_ivar":
            out[n] = np.zeros(len(t), np.float32)
        elif n in data and c.is_string:
            out[n] = data[n]
        elif n in data:
            v = np.asarray(data[n])
            if c.shape and v.ndim == 2 and v.shape[1] < c.shape[0]:
                pad = np.zeros((len(v), c.shape[0]), dtype=c.numpy_dtype)
                pad[:, :v.shape[1]] = v
                v = pad
            out[n] = v.astype(c.numpy_dtype, copy=False)
    return out
