"""Joint Gauss-Newton fit of a group of sources over several images and bands (reference 4.3).

Parameters per source: one flux per band (nanomaggies), position offsets (xi, eta) in
arcsec from the initial (ra, dec) (xi = dRA cos dec, east), and for galaxies
(log r_e [arcsec], ee1, ee2) ("EllipseESoft"; REX: log r_e only), plus n for SER.
Derivatives: fluxes and positions analytic, shape and Sersic index by forward differences.
Priors N(0, 0.25) on ee1, ee2; bounds and max steps from :mod:`ellipse`; columns scaled
to unit norm, dense least squares, line search over alpha in {0.1, 0.3, 1}, stop when
d(ln posterior) <= 0.1 (1e-6 if a step was limited) or after 50 steps. All parameter
updates are float64.

Uncertainties (catalog parameterisation r_e, e1, e2; ra/dec in deg): ``ivar`` is the
diagonal of the Fisher matrix A^T A (what the survey reports, no priors), ``sigma_marg``
the square root of the diagonal of its inverse (marginalised over all other parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .ellipse import (EE_PRIOR_SIGMA, LOGR_MAX, LOGR_MIN, MAX_STEP_EE, MAX_STEP_LOGR,
                      e_to_soft, soft_jacobian, soft_to_e)
from .mixtures import SERSIC_MAX, SERSIC_MIN
from .render import GALAXY_TYPES, Patch, render

FD_STEP = {"logr": 1e-4, "ee": 1e-4, "n": 1e-3}
MAX_STEP_POS = 1.0    # arcsec
MAX_STEP_N = 0.25
ALPHAS = (0.1, 0.3, 1.0)
TYPES = ("PSF", "REX", "EXP", "DEV", "SER")


@dataclass
class Source:
    """A source to fit: type, position (deg), fluxes per band (nmgy), shape (arcsec), Sersic n."""

    type: str
    ra: float
    dec: float
    flux: dict = field(default_factory=dict)
    r_e: float = 0.45
    e1: float = 0.0
    e2: float = 0.0
    n: float = 4.0


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
    """Gauss-Newton fitter for ``sources`` on ``images`` (list of :class:`image.Image`)."""

    def __init__(self, images, sources, bands=None, numba: bool = True):
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
                px, py, jac = im.local(s.ra, s.dec)
                geo.append((px, py, jac, im.psf_at(px, py)))
            self.ref.append(geo)
        self.lo = np.full(len(names), -np.inf)
        self.hi = np.full(len(names), np.inf)
        self.maxstep = np.full(len(names), np.inf)
        for s, d in zip(self.sources, self.layout):
            self.maxstep[d["xi"]] = self.maxstep[d["eta"]] = MAX_STEP_POS
            if "logr" in d:
                self.lo[d["logr"]], self.hi[d["logr"]] = LOGR_MIN, LOGR_MAX[s.type]
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
        r_e = float(np.exp(p[d["logr"]]))
        e1 = e2 = 0.0
        if "ee1" in d:
            e1, e2 = soft_to_e(p[d["ee1"]], p[d["ee2"]])
        return r_e, e1, e2, (float(p[d["n"]]) if "n" in d else None)

    def _patch(self, si: int, ii: int, p: np.ndarray, derivs: bool) -> Patch | None:
        d = self.layout[si]
        px0, py0, jac, psf = self.ref[si][ii]
        off = np.array([p[d["xi"]], p[d["eta"]]]) / 3600.0
        px, py = px0 + jac[0] @ off, py0 + jac[1] @ off
        r_e, e1, e2, n = self._shape(si, p)
        return render(self.sources[si].type, psf, px, py, self.images[ii].shape, jac,
                      r_e, e1, e2, n, derivs=derivs, numba=self.numba)

    def model_images(self, p: np.ndarray | None = None) -> list[np.ndarray]:
        """Model of all sources on every image (nmgy)."""
        p = self.p if p is None else p
        out = []
        for ii, im in enumerate(self.images):
            m = np.zeros(im.shape)
            for si, d in enumerate(self.layout):
                pt = self._patch(si, ii, p, False)
                if pt is not None:
                    m[pt.slices] += p[d["flux_" + im.band]] * pt.model
            out.append(m)
        return out

    def _log_prior(self, p: np.ndarray) -> float:
        lp = 0.0
        for d in self.layout:
            if "ee1" in d:
                lp -= 0.5 * (p[d["ee1"]] ** 2 + p[d["ee2"]] ** 2) / EE_PRIOR_SIGMA ** 2
        return lp

    def chi2(self, p: np.ndarray | None = None) -> float:
        return float(sum(np.sum(im.ivar * (im.data - m) ** 2)
                         for im, m in zip(self.images, self.model_images(p))))

    def log_posterior(self, p: np.ndarray | None = None) -> float:
        p = self.p if p is None else p
        return -0.5 * self.chi2(p) + self._log_prior(p)

    # ---- derivatives ---------------------------------------------------------------
    def _columns(self, si: int, ii: int, p: np.ndarray):
        """(patch, param indices, cols (k, h, w)) of source si on image ii."""
        d, im = self.layout[si], self.images[ii]
        base = self._patch(si, ii, p, True)
        if base is None:
            return None
        jac = self.ref[si][ii][2]
        f = p[d["flux_" + im.band]]
        idx = [d["flux_" + im.band], d["xi"], d["eta"]]
        cols = [base.model,
                f * (base.dx * jac[0, 0] + base.dy * jac[1, 0]) / 3600.0,
                f * (base.dx * jac[0, 1] + base.dy * jac[1, 1]) / 3600.0]
        for nm in _shape_names(self.sources[si].type):
            step = FD_STEP["n" if nm == "n" else ("logr" if nm == "logr" else "ee")]
            q = p.copy()
            j = d[nm]
            if q[j] + step > self.hi[j]:
                step = -step
            q[j] += step
            pt = self._patch(si, ii, q, False)
            cols.append(f * (_into(pt, base) - base.model) / step)
            idx.append(j)
        return base, idx, np.array(cols)

    def normal_equations(self, p: np.ndarray):
        """A^T A (Fisher, no priors) and A^T r over all images; also per-image column sets."""
        npar = len(p)
        ata = np.zeros((npar, npar))
        atr = np.zeros(npar)
        models = self.model_images(p)
        for ii, im in enumerate(self.images):
            resid = im.data - models[ii]
            wr = im.ivar * resid
            sets = [c for c in (self._columns(si, ii, p) for si in range(len(self.sources)))
                    if c is not None]
            for a, (pa, ia, ca) in enumerate(sets):
                sa = pa.slices
                atr[ia] += ca.reshape(len(ia), -1) @ wr[sa].ravel()
                for pb, ib, cb in sets[a:]:
                    ov = _overlap(pa, pb)
                    if ov is None:
                        continue
                    (ya, xa), (yb, xb), (ys, xs) = ov
                    w = im.ivar[ys, xs].ravel()
                    A = ca[:, ya, xa].reshape(len(ia), -1)
                    B = cb[:, yb, xb].reshape(len(ib), -1)
                    blk = (A * w) @ B.T
                    ata[np.ix_(ia, ib)] += blk
                    if pb is not pa:
                        ata[np.ix_(ib, ia)] += blk.T
        return ata, atr

    # ---- optimiser -----------------------------------------------------------------
    def step(self) -> tuple[float, bool]:
        """One Gauss-Newton step with line search; returns (d ln posterior, limited)."""
        p = self.p
        ata, atr = self.normal_equations(p)
        # priors as extra rows: d/d ee of -(ee/sigma)^2/2
        for d in self.layout:
            for k in ("ee1", "ee2"):
                if k in d:
                    j = d[k]
                    ata[j, j] += 1.0 / EE_PRIOR_SIGMA ** 2
                    atr[j] -= p[j] / EE_PRIOR_SIGMA ** 2
        scale = np.sqrt(np.diag(ata))
        ok = scale > 0
        delta = np.zeros_like(p)
        if not ok.any():
            return 0.0, False
        s = scale[ok]
        a = ata[np.ix_(ok, ok)] / np.outer(s, s)
        x = np.linalg.lstsq(a, atr[ok] / s, rcond=1e-10)[0]
        delta[ok] = x / s
        limited = False
        big = np.abs(delta) > self.maxstep
        if big.any():
            delta = np.where(big, np.sign(delta) * self.maxstep, delta)
            limited = True
        lnp0 = self.log_posterior(p)
        best, best_lnp = None, lnp0
        for alpha in ALPHAS:
            q = p + alpha * delta
            qc = np.clip(q, self.lo, self.hi)
            lim = limited or bool(np.any(qc != q))
            lnp = self.log_posterior(qc)
            if lnp > best_lnp:
                best, best_lnp, blim = qc, lnp, lim
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
        fl = np.array([n.startswith("flux_") for n in self.names])
        ata, atr = self.normal_equations(self.p)
        sub = ata[np.ix_(fl, fl)]
        self.p[fl] += np.linalg.lstsq(sub, atr[fl], rcond=1e-12)[0]
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
        live = diag > 0
        cov = np.zeros_like(F)
        if live.any():
            cov[np.ix_(live, live)] = np.linalg.pinv(F[np.ix_(live, live)], rcond=1e-13, hermitian=True)
        sig = np.sqrt(np.clip(np.diag(cov), 0, None))
        models = self.model_images(p)
        out = []
        for si, (s, d) in enumerate(zip(self.sources, self.layout)):
            r_e, e1, e2, n = self._shape(si, p)
            ra = s.ra + p[d["xi"]] / (3600.0 * np.cos(np.deg2rad(s.dec)))
            dec = s.dec + p[d["eta"]] / 3600.0
            src = Source(s.type, float(ra), float(dec),
                         {b: float(p[d["flux_" + b]]) for b in self.bands},
                         r_e if s.type != "PSF" else 0.0, e1, e2,
                         n if n is not None else (4.0 if s.type == "DEV" else 1.0 if s.type in ("EXP", "REX") else 0.0))
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
                num = den = c2 = 0.0
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
                chi2b[b] = float(sum(np.sum(im.ivar * (im.data - m) ** 2)
                                     for im, m in zip(self.images, models) if im.band == b))
            out.append(SourceResult(src, iv, sm, rchi, chi2b))
        return out


def _into(pt: Patch | None, base: Patch) -> np.ndarray:
    """pt.model placed on base's pixel box (zeros outside pt)."""
    out = np.zeros_like(base.model)
    if pt is None:
        return out
    ov = _overlap(base, pt)
    if ov is not None:
        (ya, xa), (yb, xb), _ = ov
        out[ya, xa] = pt.model[yb, xb]
    return out


def _overlap(a: Patch, b: Patch):
    """Slices of a, of b, and of the image for the overlap of two patches, or None."""
    ha, wa = a.model.shape
    hb, wb = b.model.shape
    x0, x1 = max(a.x0, b.x0), min(a.x0 + wa, b.x0 + wb)
    y0, y1 = max(a.y0, b.y0), min(a.y0 + ha, b.y0 + hb)
    if x1 <= x0 or y1 <= y0:
        return None
    return ((slice(y0 - a.y0, y1 - a.y0), slice(x0 - a.x0, x1 - a.x0)),
            (slice(y0 - b.y0, y1 - b.y0), slice(x0 - b.x0, x1 - b.x0)),
            (slice(y0, y1), slice(x0, x1)))
