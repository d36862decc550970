"""Joint Gauss-Newton fit of a group of sources over several images and bands (reference 4.3).

Parameters per source: one flux per band (nanomaggies), position offsets (xi, eta) in
arcsec from the initial (ra, dec) (xi = dRA cos dec, east), and for galaxies
(log r_e [arcsec], ee1, ee2) ("EllipseESoft"; REX: log r_e only), plus n for SER.
Derivatives: all analytic (fluxes, positions, shape via the derivative of each Gaussian wrt
its covariance chained through the ellipse map, Sersic index via the mixture's spline in n);
the normal equations are accumulated from patch overlaps in numba (:mod:`normal_kernels`).
Priors N(0, 0.25) on ee1, ee2; bounds and max steps from :mod:`ellipse`; columns scaled
to unit norm, a pivot-dropping Cholesky solve (:func:`normal_kernels.solve_psd`), line search over alpha in {0.1, 0.3, 1}, stop when
d(ln posterior) <= 0.1 (1e-6 if a step was limited) or after 50 steps. All parameter
updates are float64.

Uncertainties (catalog parameterisation r_e, e1, e2; ra/dec in deg): ``ivar`` is the
diagonal of the Fisher matrix A^T A (what the survey reports, no priors), ``sigma_marg``
the square root of the diagonal of its inverse (marginalised over all other parameters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from legacylake.photometry.model.ellipse import (EE_PRIOR_SIGMA, LOGR_MAX, LOGR_MIN, MAX_STEP_EE, MAX_STEP_LOGR,
                      e_to_soft, soft_jacobian)
from legacylake.photometry.model.mixtures import SERSIC_MAX, SERSIC_MIN
from legacylake.photometry.model.normal_kernels import (block_dots, block_dots_np, combine, combine_np, self_dots, self_dots_np,
                             solve_psd, solve_psd_np)
from legacylake.photometry.model.render import NRAW, Patch, galaxy_mixture, render_raw, unit_covariance

MAX_STEP_POS = 1.0    # arcsec
MAX_STEP_N = 0.25
ALPHAS = (0.1, 0.3, 1.0)
#: Smaller steps tried only when no step in ALPHAS improves the posterior.
BACKTRACK_ALPHAS = (0.03, 0.01, 0.001)
TYPES = ("PSF", "REX", "EXP", "DEV", "SER")


@dataclass
class Source:
    """A source to fit: type, position (deg), fluxes per band (nmgy), shape (arcsec), Sersic n.

    A moving (reference) star has ``ref_epoch`` > 0 (Julian year of ra, dec) and proper motion
    ``pmra`` (includes cos dec), ``pmdec`` (mas/yr): on an image with an epoch it is drawn at
    its position at that epoch (reference 4.1). ``logr_max``: a tighter upper bound on log r_e
    (SGA galaxies: twice their catalogue radius)."""

    type: str
    ra: float
    dec: float
    flux: dict = field(default_factory=dict)
    r_e: float = 0.45
    e1: float = 0.0
    e2: float = 0.0
    n: float = 4.0
    pmra: float = 0.0
    pmdec: float = 0.0
    ref_epoch: float = 0.0
    logr_max: float = math.inf

    def position_at(self, epoch: float) -> tuple[float, float]:
        """(ra, dec) in deg at Julian year ``epoch`` (unchanged without motion or epochs)."""
        if self.ref_epoch <= 0 or epoch <= 0 or (self.pmra == 0 and self.pmdec == 0):
            return self.ra, self.dec
        from legacylake.catalogs_schema.astrometry import propagate
        ra, dec = propagate(self.ra, self.dec, self.pmra, self.pmdec, epoch - self.ref_epoch)
        return float(ra), float(dec)


@dataclass
class SourceResult:
    """Fitted values and uncertainties of one source in catalog parameters."""

    source: Source
    ivar: dict
    sigma_marg: dict
    rchisq: dict
    chi2_band: dict


def _shape_names(kind: str) -> list[str]:
    return {"PSF": [], "REX": ["logr"], "EXP": ["logr", "ee1", "ee2"],
            "DEV": ["logr", "ee1", "ee2"], "SER": ["logr", "ee1", "ee2", "n"]}[kind]


class Fitter:
    """Gauss-Newton fitter for ``sources`` on ``images`` (list of :class:`image.Image`).

    ``frozen_pos``: per source, True to keep its position fixed (reference stars, whose
    positions come from the reference catalogue: reference 4.1); their ra/dec ivars and
    sigmas are reported as 0 and the other parameters' sigmas are marginalised over the
    free parameters only. ``frozen_src``: per source, True to keep every parameter
    (pre-burned, frozen large galaxies)."""

    def __init__(self, images, sources, bands=None, numba: bool = True, frozen_pos=None, frozen_src=None):
        self.images = list(images)
        self.sources = [Source(**vars(s)) for s in sources]
        self.bands = list(bands or sorted({im.band for im in self.images}))
        self.numba = numba
        self.layout = []  # per source: dict name -> global index
        names = []
        for s in self.sources:
            if s.type not in TYPES:
                raise ValueError(f"unknown source type {s.type!r}")
            d = {}
            for b in self.bands:
                d["flux_" + b] = len(names); names.append("flux_" + b)
            for nm in ["xi", "eta"] + _shape_names(s.type):
                d[nm] = len(names); names.append(nm)
            self.layout.append(d)
        self.names = names
        self.frozen = np.zeros(len(names), dtype=bool)
        for d, fz in zip(self.layout, frozen_pos or []):
            if fz:
                self.frozen[d["xi"]] = self.frozen[d["eta"]] = True
        for d, fz in zip(self.layout, frozen_src or []):
            if fz:
                self.frozen[list(d.values())] = True
        self.p = np.zeros(len(names), dtype=np.float64)
        self.ref = []
        for s, d in zip(self.sources, self.layout):
            for b in self.bands:
                self.p[d["flux_" + b]] = float(s.flux.get(b, 0.0))
            if s.type != "PSF":
                self.p[d["logr"]] = np.log(max(s.r_e, 1e-2))
            if "ee1" in d:
                self.p[d["ee1"]], self.p[d["ee2"]] = e_to_soft(s.e1, s.e2)
            if "n" in d:
                self.p[d["n"]] = min(max(s.n, SERSIC_MIN), SERSIC_MAX)
            geo = []
            for im in self.images:
                px, py, jac = im.local(*s.position_at(getattr(im, "epoch", 0.0)))
                geo.append((px, py, jac, im.psf_at(px, py)))
            self.ref.append(geo)
        # reference 3.4: log r_e is also capped at ln(0.8 x the region's larger side, arcsec)
        logr_cap = np.log(0.8 * max(max(im.shape) * im.pixscale for im in self.images)) if self.images else np.inf
        self.lo = np.full(len(names), -np.inf)
        self.hi = np.full(len(names), np.inf)
        self.maxstep = np.full(len(names), np.inf)
        for s, d in zip(self.sources, self.layout):
            self.maxstep[d["xi"]] = self.maxstep[d["eta"]] = MAX_STEP_POS
            if "logr" in d:
                self.lo[d["logr"]], self.hi[d["logr"]] = LOGR_MIN, min(LOGR_MAX[s.type], logr_cap, s.logr_max)
                self.p[d["logr"]] = min(self.p[d["logr"]], self.hi[d["logr"]])
                self.maxstep[d["logr"]] = MAX_STEP_LOGR
            for k in ("ee1", "ee2"):
                if k in d:
                    self.maxstep[d[k]] = MAX_STEP_EE
            if "n" in d:
                self.lo[d["n"]], self.hi[d["n"]] = SERSIC_MIN, SERSIC_MAX
                self.maxstep[d["n"]] = MAX_STEP_N
        self.p = np.clip(self.p, self.lo, self.hi)
        self.niter = 0

    # ---- model ---------------------------------------------------------------------
    def _shape(self, si: int, p: np.ndarray):
        d, kind = self.layout[si], self.sources[si].type
        if kind == "PSF":
            return 0.0, 0.0, 0.0, None
        r_e = math.exp(p[d["logr"]])
        e1 = e2 = 0.0
        if "ee1" in d:
            e1, e2 = _soft_to_e(p[d["ee1"]], p[d["ee2"]])
        return r_e, e1, e2, (float(p[d["n"]]) if "n" in d else None)

    def _pixel(self, si: int, ii: int, p: np.ndarray) -> tuple[float, float]:
        d = self.layout[si]
        px0, py0, jac, _ = self.ref[si][ii]
        xi, eta = p[d["xi"]] / 3600.0, p[d["eta"]] / 3600.0
        return px0 + jac[0, 0] * xi + jac[0, 1] * eta, py0 + jac[1, 0] * xi + jac[1, 1] * eta

    def _gal(self, si: int, ii: int, p: np.ndarray, shape_derivs: bool):
        """Galaxy tuple for :func:`render.render_raw` (None for PSF) and, if asked,
        d(cxx, cxy, cyy)/d(shape parameters) as rows in the layout's order."""
        kind = self.sources[si].type
        if kind == "PSF":
            return None, None
        d = self.layout[si]
        jac = self.ref[si][ii][2]
        amp, var, damp, dvar = galaxy_mixture(kind, p[d["n"]] if "n" in d else None)
        logr = p[d["logr"]]
        ee = (p[d["ee1"]], p[d["ee2"]]) if "ee1" in d else None

        def cov(lr, e_1, e_2):
            e1, e2 = _soft_to_e(e_1, e_2) if ee is not None else (0.0, 0.0)
            return unit_covariance(math.exp(lr), e1, e2, jac)
        c = cov(logr, *(ee or (0.0, 0.0)))
        gal = (amp, var, damp, dvar, *c)
        if not shape_derivs:
            return gal, None
        rows = [[2.0 * c[0], 2.0 * c[1], 2.0 * c[2]]]
        if ee is not None:
            h = 1e-6
            for k in range(2):
                up, dn = list(ee), list(ee)
                up[k] += h
                dn[k] -= h
                cu, cd = cov(logr, *up), cov(logr, *dn)
                rows.append([(cu[i] - cd[i]) / (2 * h) for i in range(3)])
        return gal, rows

    def _raw(self, si: int, ii: int, p: np.ndarray, nout: int, shape_derivs: bool = False):
        gal, rows = self._gal(si, ii, p, shape_derivs)
        px, py = self._pixel(si, ii, p)
        im = self.images[ii]
        return render_raw(gal, self.ref[si][ii][3], px, py, im.shape, nout, self.numba), rows

    def _patch(self, si: int, ii: int, p: np.ndarray, derivs: bool = False) -> Patch | None:
        r, _ = self._raw(si, ii, p, 3 if derivs else 1)
        if r is None:
            return None
        x0, y0, raw = r
        return Patch(x0, y0, raw[0], *((raw[1], raw[2]) if derivs else ()))

    def model_images(self, p: np.ndarray | None = None) -> list[np.ndarray]:
        """Model of all sources on every image (nmgy)."""
        p = self.p if p is None else p
        out = []
        for ii, im in enumerate(self.images):
            m = np.zeros(im.shape)
            for si, d in enumerate(self.layout):
                r, _ = self._raw(si, ii, p, 1)
                if r is not None:
                    x0, y0, raw = r
                    h, w = raw.shape[1:]
                    m[y0:y0 + h, x0:x0 + w] += p[d["flux_" + im.band]] * raw[0]
            out.append(m)
        return out

    def _log_prior(self, p: np.ndarray) -> float:
        lp = 0.0
        for d in self.layout:
            if "ee1" in d:
                lp -= 0.5 * (p[d["ee1"]] ** 2 + p[d["ee2"]] ** 2) / EE_PRIOR_SIGMA ** 2
        return lp

    def chi2(self, p: np.ndarray | None = None) -> float:
        return float(sum(_chi2(im, m) for im, m in zip(self.images, self.model_images(p))))

    def log_posterior(self, p: np.ndarray | None = None) -> float:
        p = self.p if p is None else p
        return -0.5 * self.chi2(p) + self._log_prior(p)

    # ---- derivatives ---------------------------------------------------------------
    def _columns(self, si: int, ii: int, p: np.ndarray):
        """(x0, y0, param indices, cols (k, h, w)) of source si on image ii, or None.

        Flux columns are the unit model; position and shape columns are the analytic
        derivatives (render_kernels) chained through the WCS Jacobian and the ellipse map."""
        d, im = self.layout[si], self.images[ii]
        kind = self.sources[si].type
        nraw = NRAW[kind]
        r, rows = self._raw(si, ii, p, nraw, shape_derivs=True)
        if r is None:
            return None
        x0, y0, raw = r
        jac = self.ref[si][ii][2]
        f = p[d["flux_" + im.band]]
        names = ["flux_" + im.band, "xi", "eta"] + _shape_names(kind)
        T = np.zeros((len(names), nraw))
        T[0, 0] = 1.0
        T[1, 1], T[1, 2] = f * jac[0, 0] / 3600.0, f * jac[1, 0] / 3600.0
        T[2, 1], T[2, 2] = f * jac[0, 1] / 3600.0, f * jac[1, 1] / 3600.0
        for k, row in enumerate(rows or []):
            T[3 + k, 3:6] = f * np.asarray(row)
        if kind == "SER":
            T[-1, 6] = f
        cols = np.empty((len(names),) + raw.shape[1:])
        (combine if self.numba else combine_np)(T, raw, cols)
        return x0, y0, np.array([d[nm] for nm in names], dtype=np.int64), cols, raw[0]

    def normal_equations(self, p: np.ndarray, with_chi2: bool = False):
        """A^T A (Fisher, no priors) and A^T r over all images (and chi^2 if asked).

        Built per image from each source's column patch (self terms) and from every
        overlapping pair of patches, never forming the dense pixels x parameters matrix."""
        npar = len(p)
        ata = np.zeros((npar, npar))
        atr = np.zeros(npar)
        chi2 = 0.0
        sdots, bdots = (self_dots, block_dots) if self.numba else (self_dots_np, block_dots_np)
        for ii, im in enumerate(self.images):
            sets = []
            m = np.zeros(im.shape)
            for si, d in enumerate(self.layout):
                c = self._columns(si, ii, p)
                if c is None:
                    continue
                x0, y0, idx, cols, unit = c
                h, w = unit.shape
                m[y0:y0 + h, x0:x0 + w] += p[d["flux_" + im.band]] * unit
                sets.append(c)
            resid = im.data - m
            wr = im.ivar * resid
            chi2 += float(np.sum(wr * resid))
            for a, (xa, ya, ia, ca, _) in enumerate(sets):
                sdots(ca, ya, xa, ia, im.ivar, wr, ata, atr)
                ha, wa = ca.shape[1:]
                for xb, yb, ib, cb, _ in sets[a + 1:]:
                    hb, wb = cb.shape[1:]
                    if xb >= xa + wa or xa >= xb + wb or yb >= ya + ha or ya >= yb + hb:
                        continue
                    bdots(ca, ya, xa, ia, cb, yb, xb, ib, im.ivar, ata)
        if with_chi2:
            return ata, atr, chi2
        return ata, atr

    # ---- optimiser -----------------------------------------------------------------
    def step(self) -> tuple[float, bool]:
        """One Gauss-Newton step with line search; returns (d ln posterior, limited)."""
        p = self.p
        ata, atr, chi2 = self.normal_equations(p, with_chi2=True)
        # priors as extra rows: d/d ee of -(ee/sigma)^2/2
        for d in self.layout:
            for k in ("ee1", "ee2"):
                if k in d:
                    j = d[k]
                    ata[j, j] += 1.0 / EE_PRIOR_SIGMA ** 2
                    atr[j] -= p[j] / EE_PRIOR_SIGMA ** 2
        scale = np.sqrt(np.diag(ata))
        ok = (scale > 0) & ~self.frozen
        delta = np.zeros_like(p)
        if not ok.any():
            return 0.0, False
        s = scale[ok]
        a = ata[np.ix_(ok, ok)] / np.outer(s, s)
        x = np.zeros(len(s))
        (solve_psd if self.numba else solve_psd_np)(a, atr[ok] / s, 1e-10, x)
        delta[ok] = x / s
        # Max steps: the per-parameter clipped step (as before) and, when anything is clipped,
        # the whole step scaled down uniformly (keeps the Gauss-Newton direction, so a small
        # enough alpha always improves; clipping single components can break descent).
        over = np.abs(delta) / self.maxstep
        limited = bool(np.any(over > 1.0))
        dirs = [delta]
        if limited:
            dirs = [np.clip(delta, -self.maxstep, self.maxstep), delta / float(np.max(over))]
        lnp0 = -0.5 * chi2 + self._log_prior(p)
        best, best_lnp, blim = None, lnp0, limited

        def trydir(dv, alphas):
            nonlocal best, best_lnp, blim
            for alpha in alphas:
                q = p + alpha * dv
                qc = np.clip(q, self.lo, self.hi)
                lnp = self.log_posterior(qc)
                if lnp > best_lnp:
                    best, best_lnp, blim = qc, lnp, limited or bool(np.any(qc != q))
        for dv in dirs:
            trydir(dv, ALPHAS)
        if best is None:
            # no step of the line search improved: backtrack along the (scaled) direction
            trydir(dirs[-1], BACKTRACK_ALPHAS)
        if best is None:
            return 0.0, limited
        self.p = best
        return best_lnp - lnp0, blim

    def fit(self, max_iter: int = 50) -> "Fitter":
        """Iterate Gauss-Newton steps until d ln p <= 0.1 (1e-6 if limited)."""
        for it in range(max_iter):
            self.niter = it + 1
            dlnp, limited = self.step()
            if dlnp <= (1e-6 if limited else 0.1):
                break
        return self

    def fit_fluxes(self) -> "Fitter":
        """Linear least-squares fit of fluxes only (forced photometry), positions/shapes fixed."""
        fl = np.array([n.startswith("flux_") for n in self.names]) & ~self.frozen
        ata, atr = self.normal_equations(self.p)
        sub = ata[np.ix_(fl, fl)]
        x = np.zeros(len(sub))
        (solve_psd if self.numba else solve_psd_np)(sub, atr[fl], 1e-12, x)
        self.p[fl] += x
        return self

    # ---- results -------------------------------------------------------------------
    def results(self) -> list[SourceResult]:
        """Fitted sources with diagonal ivars and marginalised sigmas in catalog parameters."""
        p = self.p
        ata, _ = self.normal_equations(p)
        # Jacobian d(catalog)/d(fit): ra = ra0 + xi/(3600 cos dec0), dec = dec0 + eta/3600,
        # (r, e1, e2) from (log r, ee1, ee2); fluxes and n unchanged.
        J = np.eye(len(p))
        for si, (s, d) in enumerate(zip(self.sources, self.layout)):
            J[d["xi"], d["xi"]] = 1.0 / (3600.0 * np.cos(np.deg2rad(s.dec)))
            J[d["eta"], d["eta"]] = 1.0 / 3600.0
            if "ee1" in d:
                js = soft_jacobian(p[d["logr"]], p[d["ee1"]], p[d["ee2"]])
                ix = [d["logr"], d["ee1"], d["ee2"]]
                J[np.ix_(ix, ix)] = js
            elif "logr" in d:
                J[d["logr"], d["logr"]] = np.exp(p[d["logr"]])
        Jinv = np.linalg.inv(J)
        F = Jinv.T @ ata @ Jinv
        diag = np.diag(F).copy()
        diag[self.frozen] = 0.0
        sig = marginal_sigmas(F, diag > 0)
        models = self.model_images(p)
        out = []
        for si, (s, d) in enumerate(zip(self.sources, self.layout)):
            r_e, e1, e2, n = self._shape(si, p)
            ra = s.ra + p[d["xi"]] / (3600.0 * np.cos(np.deg2rad(s.dec)))
            dec = s.dec + p[d["eta"]] / 3600.0
            src = Source(s.type, float(ra), float(dec),
                         {b: float(p[d["flux_" + b]]) for b in self.bands},
                         r_e if s.type != "PSF" else 0.0, e1, e2,
                         n if n is not None else (4.0 if s.type == "DEV" else 1.0 if s.type in ("EXP", "REX") else 0.0),
                         s.pmra, s.pmdec, s.ref_epoch, s.logr_max)
            names = {"ra": "xi", "dec": "eta", "shape_r": "logr", "shape_e1": "ee1",
                     "shape_e2": "ee2", "sersic": "n"}
            names.update({"flux_" + b: "flux_" + b for b in self.bands})
            iv, sm = {}, {}
            for cat, fit in names.items():
                if fit in d:
                    iv[cat] = float(diag[d[fit]])
                    sm[cat] = float(sig[d[fit]])
                else:
                    iv[cat], sm[cat] = 0.0, 0.0
            rchi, chi2b = {}, {}
            for b in self.bands:
                num = den = 0.0
                for ii, im in enumerate(self.images):
                    if im.band != b:
                        continue
                    pt = self._patch(si, ii, p, False)
                    if pt is None:
                        continue
                    chi = im.ivar[pt.slices] * (im.data[pt.slices] - models[ii][pt.slices]) ** 2
                    num += float(np.sum(chi * pt.model))
                    den += float(np.sum(pt.model * (im.ivar[pt.slices] > 0)))
                rchi[b] = num / den if den > 0 else 0.0
            for b in self.bands:
                chi2b[b] = float(sum(_chi2(im, m) for im, m in zip(self.images, models) if im.band == b))
            out.append(SourceResult(src, iv, sm, rchi, chi2b))
        return out


def marginal_sigmas(F: np.ndarray, live: np.ndarray, rcond: float = 1e-10) -> np.ndarray:
    """Marginalised sigmas sqrt(diag(F^-1)) of the ``live`` parameters of the Fisher matrix
    ``F`` (0 for the others), in the parameters' own units.

    F is scaled to unit diagonal before the pseudo-inverse, so ``rcond`` compares correlation
    eigenvalues, not parameters of wildly different scales (a bright star's flux next to a
    faint neighbour's shape: unscaled, the cut dropped real directions and gave sigmas 1e7
    times too small). A marginal sigma is never below the conditional one 1/sqrt(F_ii); the
    result is floored there (reached only in exactly degenerate directions)."""
    sig = np.zeros(len(F))
    if not live.any():
        return sig
    sub = F[np.ix_(live, live)]
    d = 1.0 / np.sqrt(np.diag(sub))
    corr_inv = np.linalg.pinv(sub * d[:, None] * d[None, :], rcond=rcond, hermitian=True)
    var = np.clip(np.diag(corr_inv), 0, None) * d * d
    sig[live] = np.maximum(np.sqrt(var), d)
    return sig


def _chi2(im, m: np.ndarray) -> float:
    r = im.data - m
    return float(np.sum(im.ivar * r * r))


def _soft_to_e(ee1: float, ee2: float) -> tuple[float, float]:
    """(ee1, ee2) -> (e1, e2) with |e| = 1 - exp(-|ee|) (scalar, math-only twin of ellipse.soft_to_e)."""
    ee = math.hypot(ee1, ee2)
    if ee == 0.0:
        return 0.0, 0.0
    s = -math.expm1(-ee) / ee
    return ee1 * s, ee2 * s
