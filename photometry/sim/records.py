"""A simulated brick's catalog as FITS records: the record layout of a release, the packing
plan of its columns for the numba record writer, and :class:`BrickRecords` (rows written
block by block, straight into the big-endian FITS layout)."""

from __future__ import annotations

import functools

import numpy as np

from legacylake.catalogs_schema import model
from legacylake.catalogs_schema.constants import APERTURE_RADII_OPTICAL_ARCSEC, APERTURE_RADII_WISE_ARCSEC
from legacylake.photometry.sim.conditions import OPT, WISE
from legacylake.photometry.sim.fitswriter import fits_dtype
from legacylake.photometry.sim.kernels.apflux import aperture_gauss
from legacylake.photometry.sim.kernels.common import NORMAL_TABLE, field_offset, record_buffer
from legacylake.photometry.sim.kernels.pack import PackPlan, string_matrix
from legacylake.photometry.sim.kernels.record import record_block_kernel
from legacylake.photometry.sim.kernels.splitmix import C2 as _C2
from legacylake.photometry.sim.kernels.splitmix import GOLD as _GOLD
from legacylake.photometry.sim.kernels.splitmix import mix as _mix
from legacylake.photometry.sim.rng import seed_key

RELEASE = {"dr9": {"S": 9010, "N": 9011}, "dr4": {"S": 4000, "N": 4000}}
BAND_ALL = ("g", "r", "z", "w1", "w2", "w3", "w4")
LC_EPOCHS = {"dr9": 15, "dr4": 7}



NFILL = 44


def uniforms16(uid: np.ndarray, key: np.uint64, k: int) -> np.ndarray:
    """(n, k) uniforms in (0, 1) with 16-bit resolution, four per splitmix64 hash of the uid."""
    u = np.asarray(uid).astype(np.uint64, copy=False)
    nw = (k + 3) // 4
    with np.errstate(over="ignore"):
        base = _mix(u * _GOLD ^ np.uint64(key))
        s = (np.arange(nw, dtype=np.uint64) + np.uint64(1)) * _C2
        h = _mix(base[:, None] + s[None, :])
    v = h.view(np.uint16).reshape(len(u), 4 * nw)[:, :k]
    return (v + 0.5) * (1.0 / 65536.0)


# ---------------------------------------------------------------- record layout
@functools.cache
def fits_record_dtype(release: str = "dr9") -> np.dtype:
    """On-disk FITS layout (upper-case, big-endian, logicals as uint8) of every
    ``<release>-tractor`` column (:func:`legacylake.photometry.sim.fitswriter.fits_dtype`): the required ones and the
    optional ones (DR4's u, i, Y bands, written with no data: see :func:`_no_data_columns`)."""
    dm = model(f"{release.lower()}-tractor")
    return fits_dtype(dm, [c.name for c in dm.columns])


@functools.cache
def _scalar_plan(release: str) -> tuple[tuple[str, bool], ...]:
    """(name, is_bool) of the columns filled by numpy (all but the kernels' apflux and lc_*)."""
    dm = model(f"{release.lower()}-tractor")
    kern = tuple(f"_{bd}" for bd in BAND_ALL)
    return tuple((c.name, c.numpy_dtype.kind == "b") for c in dm.columns
                 if not ((c.name.startswith("apflux") and c.name.endswith(kern)) or c.name.startswith("lc_")))


@functools.cache
def _no_data_columns(release: str) -> tuple[tuple[str, str, tuple], ...]:
    """(name, band, shape) of the optional model columns of bands the survey did not observe
    (DR4: u, i, Y): written with the no-data convention, flux 0, ivar 0, nobs 0, masks 0, and
    mw_transmission from the band's extinction coefficient."""
    dm = model(f"{release.lower()}-tractor")
    return tuple((c.name, c.name.rsplit("_", 1)[1], c.shape or ()) for c in dm.columns if not c.required)


@functools.cache
def _pack_plan(release: str) -> tuple[PackPlan, tuple[str, ...]]:
    """The :class:`legacylake.photometry.sim.kernels.pack.PackPlan` of the scalar columns and the string columns' names."""
    fdt = fits_record_dtype(release)
    cols, strings = [], []
    for nm, is_bool in _scalar_plan(release):
        up = nm.upper()
        kind = fdt[up].base.kind
        if kind == "S":
            strings.append(up)
        else:
            cols.append((up, "b" if is_bool else ("f" if kind == "f" else "i")))
    return PackPlan(fdt, cols), tuple(strings)


def from_fits_records(rec: np.ndarray, release: str = "dr9") -> np.ndarray:
    """The FITS-layout records as the native :func:`catalog_dtype` array (lowercase, str, bool)."""
    dm = model(f"{release.lower()}-tractor")
    out = np.empty(len(rec), dtype=catalog_dtype(release))
    for c in dm.columns:
        if not c.required:
            continue
        v = rec[c.name.upper()]
        if c.is_string:
            v = v.astype(out.dtype[c.name].base)
        elif c.numpy_dtype.kind == "b":
            v = v == ord("T")
        out[c.name] = v
    return out


class _PackedColumns(dict):
    """The kept rows' columns (lower-case name -> (n,) or (n, k) array). Each column of the
    release's :class:`legacylake.photometry.sim.kernels.pack.PackPlan` is also copied into the plan's F / I matrices when
    it is assigned, while it is still in the cache. A column must not be changed in place
    after it is assigned (assign it again instead)."""

    def __init__(self, release: str, n: int):
        super().__init__()
        plan, _ = _pack_plan(release)
        self._plan = plan
        self._F, self._I = plan.matrices(n)
        self._slots = _slot_map(release)
        self._done: set[str] = set()

    def __setitem__(self, name: str, v) -> None:
        super().__setitem__(name, v)
        hit = self._slots.get(name)
        if hit is None:
            return
        is_f, s = hit
        M = self._F if is_f else self._I
        v = np.asarray(v)
        if v.ndim == 2:
            M[s:s + v.shape[1]] = v.T
        else:
            M[s] = v
        self._done.add(name)

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(F, I), every slot filled (checked)."""
        missing = set(self._slots) - self._done
        if missing:
            raise KeyError(f"packed columns never assigned: {sorted(missing)}")
        return self._F, self._I


@functools.cache
def _slot_map(release: str) -> dict[str, tuple[bool, int]]:
    """lower-case column name -> (float matrix?, first slot) of the release's pack plan."""
    plan, _ = _pack_plan(release)
    out = {nm.lower(): (True, s) for nm, s in plan.frow.items()}
    out.update({nm.lower(): (False, s) for nm, s in plan.irow.items()})
    return out


@functools.lru_cache(maxsize=8)
def _kernel_layout(release: str, seed: int) -> dict:
    """Per (release, seed) constants of :func:`legacylake.photometry.sim.kernels.record.record_block_kernel`: apflux and
    light-curve byte offsets (-1: column absent), random keys, aperture radii (read-only)."""
    fdt = fits_record_dtype(release)
    bands = OPT + WISE
    nrmax = max(len(APERTURE_RADII_OPTICAL_ARCSEC), len(APERTURE_RADII_WISE_ARCSEC))
    nb = len(bands)
    ap = {"offs": np.full((nb, 5), -1, np.int64), "keys": np.zeros(nb, np.uint64),
          "radii": np.zeros((nb, nrmax)), "nr": np.zeros(nb, np.int64), "opt": np.zeros(nb, np.bool_)}
    pre = "APFLUX", "APFLUX_IVAR", "APFLUX_RESID", "APFLUX_BLOBRESID", "APFLUX_MASKED"
    for j, bd in enumerate(bands):
        offs = np.array([field_offset(fdt, f"{p}_{bd.upper()}") for p in pre], np.int64)
        if offs[0] < 0:
            continue
        opt = bd in OPT
        radii = APERTURE_RADII_OPTICAL_ARCSEC if opt else APERTURE_RADII_WISE_ARCSEC
        ap["offs"][j], ap["keys"][j], ap["nr"][j], ap["opt"][j] = offs, seed_key(seed, 20 + j), len(radii), opt
        ap["radii"][j, :len(radii)] = radii
    pre = "FLUX", "FLUX_IVAR", "NOBS", "FRACFLUX", "RCHISQ", "MJD", "EPOCH_INDEX"
    wb = ("w1", "w2")
    lc = {"offs": np.array([[field_offset(fdt, f"LC_{p}_{bd.upper()}") for p in pre] for bd in wb], np.int64),
          "keys": np.array([seed_key(seed, 30 + j) for j in range(len(wb))], np.uint64)}
    for v in list(ap.values()) + list(lc.values()):
        v.flags.writeable = False
    return {"bands": bands, "ap": ap, "lc_bands": wb, "lc": lc,
            "mjd_f8": fdt["LC_MJD_W1"].base.itemsize == 8, "ne": fdt["LC_FLUX_W1"].shape[0]}


class BrickRecords:
    """One brick's catalog ready to be written as FITS records (:func:`fits_record_dtype`):
    the scalar columns packed by :mod:`legacylake.photometry.sim.kernels.pack`, apflux and lc_* made by their kernels,
    any block of rows at a time (:mod:`legacylake.photometry.sim.kernels.record`). ``uid``: truth uid of each row."""

    BLOCK_ROWS = 384  # ~810 kB of DR9 records: stays in the 1 MiB L2 while filled and written

    def __init__(self, release: str, seed: int, cols: dict, uid: np.ndarray, ap_in: dict, lc_in: dict,
                 mjd0: np.ndarray, is_qso: np.ndarray):
        self.release = release
        self.dtype = fdt = fits_record_dtype(release)
        self.n = n = len(uid)
        self.uid = uid
        #: the RELEASE of the rows (None for an empty brick)
        self.release_id = int(cols["release"][0]) if n else None
        plan, strings = _pack_plan(release)
        self._plan = plan
        self._S, self._soffs, self._sstart = string_matrix(fdt, strings, cols, n)
        if isinstance(cols, _PackedColumns):
            self._F, self._I = cols.matrices()
        else:
            self._F, self._I = plan.matrices(n)
            plan.fill(self._F, self._I, cols)
        lay = _kernel_layout(release, seed)
        self._ap = ap = dict(lay["ap"], f=np.empty((len(lay["bands"]), 5, n)),
                             gauss=np.empty((len(lay["bands"]), lay["ap"]["radii"].shape[1], n)))
        for j, bd in enumerate(lay["bands"]):
            if ap["offs"][j, 0] < 0:
                continue
            ftrue, fmodel, s2, nea_psf, depth, fmask = ap_in[bd]
            nr = ap["nr"][j]
            aperture_gauss(s2, ap["radii"][j, :nr], out=ap["gauss"][j, :nr])
            for q, v in enumerate((ftrue, fmodel, nea_psf, depth, fmask)):
                ap["f"][j, q] = v
        wb = lay["lc_bands"]
        self._lc = lc = dict(lay["lc"], f=np.empty((len(wb), 3, n)), i=np.empty((len(wb), 2, n), np.int64))
        for j, bd in enumerate(wb):
            ftrue, ivar, fracflux, nep, nobs = lc_in[bd]
            lc["f"][j, 0], lc["f"][j, 1], lc["f"][j, 2] = ftrue, ivar, fracflux
            lc["i"][j, 0], lc["i"][j, 1] = nep, nobs
        self._mjd_f8, self._ne = lay["mjd_f8"], lay["ne"]
        self._mjd0 = np.ascontiguousarray(mjd0, np.float64)
        self._qso = np.ascontiguousarray(is_qso)

    def fill(self, buf: np.ndarray, i0: int, i1: int) -> None:
        """Rows i0..i1 into buf[0:i1-i0] (C-contiguous uint8 (m, itemsize))."""
        if i1 <= i0:
            return
        p, ap, lc = self._plan, self._ap, self._lc
        record_block_kernel(buf, i0, i1, self.uid, NORMAL_TABLE, self._F, p.foffs, p.fcodes, self._I, p.ioffs,
                            p.icodes, self._S, self._soffs, self._sstart, ap["offs"], ap["keys"], ap["f"],
                            ap["gauss"], ap["radii"], ap["nr"], ap["opt"], lc["offs"], lc["keys"], lc["f"], lc["i"],
                            self._mjd0, self._qso, self._mjd_f8, self._ne)

    def records(self) -> np.ndarray:
        """All rows as one FITS-layout structured array."""
        rec = np.empty(self.n, self.dtype)
        buf = record_buffer(rec)
        for i0 in range(0, self.n, self.BLOCK_ROWS):
            self.fill(buf[i0:], i0, min(i0 + self.BLOCK_ROWS, self.n))
        return rec

    def blocks(self, rows: int | None = None):
        """Successive blocks of rows as bytes-like views of one reused buffer (for the writer)."""
        rows = rows or self.BLOCK_ROWS
        buf = np.empty((rows, self.dtype.itemsize), np.uint8)
        for i0 in range(0, self.n, rows):
            i1 = min(i0 + rows, self.n)
            self.fill(buf, i0, i1)
            yield memoryview(buf[: i1 - i0]).cast("B")


def catalog_dtype(release: str = "dr9") -> np.dtype:
    """Native structured dtype of the required ``<release>-tractor`` columns (lowercase)."""
    dm = model(f"{release.lower()}-tractor")
    fields = []
    for c in dm.columns:
        if not c.required:
            continue
        base = np.dtype(f"U{c.width}") if c.is_string else c.numpy_dtype
        fields.append((c.name, base, c.shape) if c.shape else (c.name, base))
    return np.dtype(fields)
