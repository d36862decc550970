"""IVOA UCDs (UCD1+ words) of the Legacy Surveys columns, for VOTable and TAP metadata.

Only the common columns get one (positions, fluxes, magnitudes, ids, types, bits); others
return ``""``. Bands map to the UCD spectral words: g -> em.opt.B, r -> em.opt.R,
i and z -> em.opt.I, W1 -> em.IR.3-4um, W2 -> em.IR.4-8um, W3 -> em.IR.8-15um, W4 -> em.IR.15-30um.
"""

from __future__ import annotations

import re

#: Band -> UCD spectral word.
BAND_UCD = {"u": "em.opt.U", "g": "em.opt.B", "r": "em.opt.R", "i": "em.opt.I", "z": "em.opt.I",
            "y": "em.opt.I", "w1": "em.IR.3-4um", "w2": "em.IR.4-8um", "w3": "em.IR.8-15um",
            "w4": "em.IR.15-30um"}

_EXACT = {
    "ra": "pos.eq.ra;meta.main", "dec": "pos.eq.dec;meta.main",
    "ra_ivar": "stat.weight;pos.eq.ra", "dec_ivar": "stat.weight;pos.eq.dec",
    "release": "meta.version", "brickid": "meta.id;obs.field", "brickname": "meta.id;obs.field",
    "objid": "meta.id;meta.main", "type": "src.class.struct", "morphtype": "src.class.struct",
    "ref_id": "meta.id.cross", "ref_cat": "meta.ref", "ref_epoch": "time.epoch",
    "pmra": "pos.pm;pos.eq.ra", "pmdec": "pos.pm;pos.eq.dec", "parallax": "pos.parallax",
    "ebv": "phot.color.excess", "maskbits": "meta.code.qual", "fitbits": "meta.code.qual",
    "shape_r": "phys.angSize;src", "shape_e1": "src.ellipticity", "shape_e2": "src.ellipticity",
    "sersic": "src.morph.param", "dchisq": "stat.fit.chi2", "_healpix_29": "pos.healpix",
    "nest4096": "pos.healpix", "ring256": "pos.healpix", "random_id": "stat.value", "glon": "pos.galactic.lon", "glat": "pos.galactic.lat",
    "brick_primary": "meta.code", "bx": "pos.cartesian.x;instr.det", "by": "pos.cartesian.y;instr.det",
    "mjd_min": "time.start;obs", "mjd_max": "time.end;obs",
    "pmra_ivar": "stat.weight;pos.pm;pos.eq.ra", "pmdec_ivar": "stat.weight;pos.pm;pos.eq.dec",
    "parallax_ivar": "stat.weight;pos.parallax", "shape_r_ivar": "stat.weight;phys.angSize;src",
    "shape_e1_ivar": "stat.weight;src.ellipticity", "shape_e2_ivar": "stat.weight;src.ellipticity",
    "sersic_ivar": "stat.weight;src.morph.param",
    "gaia_phot_g_mean_mag": "phot.mag;em.opt", "gaia_phot_bp_mean_mag": "phot.mag;em.opt.B",
    "gaia_phot_rp_mean_mag": "phot.mag;em.opt.R",
    "g_r": "phot.color;em.opt.B;em.opt.R", "r_z": "phot.color;em.opt.R;em.opt.I",
    "z_w1": "phot.color;em.opt.I;em.IR.3-4um", "w1_w2": "phot.color;em.IR.3-4um;em.IR.4-8um",
}

#: (pattern with a band group, UCD template with {band}).
_BANDED = [
    (r"flux_(?P<b>\w+)", "phot.flux;{band}"),
    (r"dered_flux_(?P<b>\w+)", "phot.flux;{band}"),
    (r"flux_ivar_(?P<b>\w+)", "stat.weight;phot.flux;{band}"),
    (r"fiber(tot)?flux_(?P<b>\w+)", "phot.flux;{band}"),
    (r"lc_flux_ivar_(?P<b>\w+)", "stat.weight;phot.flux;{band}"),
    (r"lc_mjd_(?P<b>\w+)", "time.epoch;{band}"),
    (r"(dered_)?mag_(?P<b>\w+)", "phot.mag;{band}"),
    (r"snr_(?P<b>\w+)", "stat.snr;{band}"),
    (r"mw_transmission_(?P<b>\w+)", "phys.transmission;{band}"),
    (r"nobs_(?P<b>\w+)", "meta.number;obs;{band}"),
    (r"(any|all|wise)mask_(?P<b>\w+)", "meta.code.qual;{band}"),
    (r"rchisq_(?P<b>\w+)", "stat.fit.chi2;{band}"),
    (r"fracflux_(?P<b>\w+)", "phot.flux;arith.ratio;{band}"),
    (r"(psf|gal)depth_(?P<b>\w+)", "stat.weight;phot.flux;{band}"),
    (r"psfsize_(?P<b>\w+)", "instr.det.psf;{band}"),
    (r"apflux_(?P<b>\w+)", "phot.flux;{band}"),
    (r"apflux_ivar_(?P<b>\w+)", "stat.weight;phot.flux;{band}"),
    (r"lc_flux_(?P<b>\w+)", "phot.flux;{band}"),
]
_BANDED_RE = [(re.compile(p + "$"), t) for p, t in _BANDED]


def ucd_of(column: str) -> str:
    """The UCD of a Legacy Surveys column (lowercase name), ``""`` when none is assigned."""
    name = column.lower()
    if name in _EXACT:
        return _EXACT[name]
    for rx, tmpl in _BANDED_RE:
        m = rx.match(name)
        if m and m.group("b") in BAND_UCD:
            return tmpl.format(band=BAND_UCD[m.group("b")])
    return ""
