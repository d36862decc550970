"""Per-source model selection (reference 4.3 stage 2), shared by ``photometry fit --select``
and ``photometry run-brick``.

Sources are visited brightest first (reference stars first); for each, every other source's
current model (the selected one for sources already visited, dropped ones removed) is subtracted, the candidate models
are fitted alone starting from the current fit, dchisq is computed against "no source"
per band (bands with negative flux count against), and the type is chosen by the rules
of :mod:`legacylake.photometry.model.selection`. DR9: PSF, REX; DEV and EXP only if chi2_REX beats chi2_PSF by 1 or
either dchisq > 400; SER only if the rules would pick DEV or EXP. DR4: PSF, SIMP (an EXP
of 0.45 arcsec, round, fluxes fitted at the PSF position), DEV, EXP; COMP approximated by a
Sersic fit started from the better of DEV/EXP, tried where max(DEV, EXP) >= PSF + 12.
"""

from __future__ import annotations

import numpy as np

from legacylake.catalogs_schema.constants import DCHISQ_MODELS

from legacylake.photometry.model.selection import select_type

SIMP_RE = 0.45  # arcsec


def _crop(images, ra: float, dec: float, half: int):
    """Images cut to +-half pixels around (ra, dec); those not covering it are dropped."""
    out = []
    for im in images:
        px, py, _ = im.local(ra, dec)
        h, w = im.shape
        x0, x1 = max(int(round(px)) - half, 0), min(int(round(px)) + half + 1, w)
        y0, y1 = max(int(round(py)) - half, 0), min(int(round(py)) + half + 1, h)
        if x1 - x0 < 3 or y1 - y0 < 3:
            continue
        iv = im.ivar[y0:y1, x0:x1]
        if not np.any(iv > 0):
            continue
        out.append(im.cut(x0, x1, y0, y1))
    return out


def select_models(images, results, model_set: str = "dr9", window: int | None = None,
                  force_psf=None, max_iter: int = 50, frozen_pos=None, all_models=None, frozen_src=None):
    """[(type, dchisq[5], SourceResult)] per source of ``results`` (fitter SourceResults).

    ``window``: fit each source on cut-outs of +-window pixels around it (None: whole images).
    ``force_psf``: per source, True to try only PSF (reference stars); ``frozen_pos``: per
    source, True to keep its position fixed in the PSF fit (reference stars; galaxy fits of
    non-point-source references move). ``all_models``: per source, True to try every model
    from its current shape (large galaxies, reference 4.3 step 3); ``frozen_src``: per source,
    True to keep its current model unfitted (frozen large galaxies). Type "" = dropped."""
    import dataclasses

    from legacylake.photometry.model.fitter import Fitter, Source
    key = "dr4" if model_set.lower() == "dr4" else "dr9"
    order = DCHISQ_MODELS[key]
    current = list(results)   # every source's current model, updated as each one is selected
    out = [None] * len(results)
    bright = sorted(range(len(results)), key=lambda i: (not (force_psf is not None and force_psf[i]),
                                                          -sum(max(v, 0.0) for v in results[i].source.flux.values())))
    for i in bright:
        r = results[i]
        others = [x.source for j, x in enumerate(current) if j != i and not (out[j] is not None and out[j][0] == "")]
        s0 = r.source
        sub = images
        if others:
            fo = Fitter(images, others)
            sub = [im.with_data(im.data - m) for im, m in zip(images, fo.model_images())]
        if window is not None and not (all_models is not None and all_models[i]):
            sub = _crop(sub, s0.ra, s0.dec, window)
        if not sub:
            out[i] = ("", np.zeros(5, np.float32), r)
            continue
        chi_none = {}
        for im in sub:
            chi_none[im.band] = chi_none.get(im.band, 0.0) + float(np.sum(im.ivar * im.data ** 2))
        fits, dchisq = {}, np.zeros(5)
        frozen = [bool(frozen_pos is not None and frozen_pos[i])]
        freeze = bool(frozen_src is not None and frozen_src[i])

        def trial(name, kind, init, fluxes_only=False):
            src = dataclasses.replace(s0, type=kind, ra=init.ra, dec=init.dec, flux=dict(init.flux),
                                      r_e=init.r_e if init.r_e > 0 else np.exp(-1), e1=init.e1, e2=init.e2,
                                      n=init.n if init.n > 0 else 4.0)
            f = Fitter(sub, [src], frozen_pos=frozen if kind == "PSF" else [False], frozen_src=[freeze])
            (f.fit_fluxes() if fluxes_only or freeze else f.fit(max_iter))
            res = f.results()[0]
            d = 0.0
            for b, c in res.chi2_band.items():
                fl = res.source.flux.get(b, 0.0)
                if fl > 0:
                    d += chi_none.get(b, 0.0) - c
                elif fl < 0:
                    d -= abs(chi_none.get(b, 0.0) - c)
            fits[name] = res
            dchisq[order.index(name)] = d

        if freeze:    # a frozen galaxy keeps its model: fluxes of its own type only
            trial(s0.type if s0.type in order else "SER", s0.type, s0)
            pick = s0.type if s0.type in order else "SER"
            out[i] = (pick, dchisq.astype(np.float32), fits[pick])
            current[i] = out[i][2]
            continue
        if all_models is not None and all_models[i] and key == "dr9":
            # large galaxies: every model, the galaxies from the current (catalogue) shape
            gal = s0 if s0.type != "PSF" else dataclasses.replace(s0, type="EXP")
            trial("PSF", "PSF", s0)
            trial("REX", "REX", dataclasses.replace(gal, e1=0.0, e2=0.0))
            trial("DEV", "DEV", gal)
            trial("EXP", "EXP", gal)
            best = fits["DEV" if dchisq[2] >= dchisq[3] else "EXP"].source
            trial("SER", "SER", dataclasses.replace(best, n=4.0 if dchisq[2] >= dchisq[3] else 1.0))
            pick = str(select_type(dchisq[None, :], key)[0]).strip()
            out[i] = (pick, dchisq.astype(np.float32), fits.get(pick, fits["PSF"]))
            current[i] = out[i][2]
            continue
        trial("PSF", "PSF", s0)
        psf = fits["PSF"].source
        if not (force_psf is not None and force_psf[i]):
            if key == "dr9":
                trial("REX", "REX", Source("REX", s0.ra, s0.dec, s0.flux, np.exp(-1)))
                dp, dr = dchisq[0], dchisq[1]
                if dr > dp + 1 or max(dp, dr) > 400:
                    trial("DEV", "DEV", Source("DEV", s0.ra, s0.dec, s0.flux, np.exp(-1)))
                    trial("EXP", "EXP", Source("EXP", s0.ra, s0.dec, s0.flux, np.exp(-1)))
                    pick = str(select_type(dchisq[None, :], "dr9")[0]).strip()
                    if pick in ("DEV", "EXP"):
                        init = fits[pick].source
                        trial("SER", "SER", Source("SER", init.ra, init.dec, init.flux, init.r_e, init.e1,
                                                   init.e2, 4.0 if pick == "DEV" else 1.0))
            else:
                trial("SIMP", "EXP", Source("EXP", psf.ra, psf.dec, psf.flux, SIMP_RE), fluxes_only=True)
                if dchisq[1] > dchisq[0] or dchisq[0] > 400:
                    trial("DEV", "DEV", Source("DEV", s0.ra, s0.dec, s0.flux, np.exp(-1)))
                    trial("EXP", "EXP", Source("EXP", s0.ra, s0.dec, s0.flux, np.exp(-1)))
                    if max(dchisq[2], dchisq[3]) >= dchisq[0] + 12:   # COMP, approximated by a Sersic
                        init = fits["DEV" if dchisq[2] >= dchisq[3] else "EXP"].source
                        trial("COMP", "SER", Source("SER", init.ra, init.dec, init.flux, init.r_e, init.e1,
                                                    init.e2, 4.0 if dchisq[2] >= dchisq[3] else 1.0))
        pick = str(select_type(dchisq[None, :], key)[0]).strip()
        out[i] = (pick, dchisq.astype(np.float32), fits.get(pick, fits["PSF"]))
        current[i] = out[i][2]
    return out
