"""Counter-based random numbers keyed by source id, and smooth random fields on the sky.

A truth source's properties and its catalog measurement must be the same in every brick
that sees it, whichever other sources are generated with it. So they come from a hash of
(seed, source uid, stream number) rather than from a sequential generator: any subset of
sources can be evaluated in any order and gives the same numbers.
"""

from __future__ import annotations

import functools

import numpy as np

from legacylake.photometry.sim.kernels.splitmix import C2 as _C2, GOLD as _GOLD, mix as _mix

_U64 = np.uint64


def seed_key(seed: int, salt: int = 0) -> np.uint64:
    """A 64-bit key for (seed, salt) (cached: the numpy scalar arithmetic costs ~30 us a call)."""
    return _seed_key(int(seed) & 0xFFFFFFFFFFFFFFFF, int(salt) & 0xFFFFFFFF)


@functools.lru_cache(maxsize=1024)
def _seed_key(seed: int, salt: int) -> np.uint64:
    with np.errstate(over="ignore"):
        z = np.array([seed], dtype=np.uint64) * _GOLD + _U64(salt)
        return _mix(_mix(z))[0]


def uniforms(uid: np.ndarray, key: np.uint64, stream: int, k: int = 1) -> np.ndarray:
    """Uniforms in (0, 1), shape (n,) if k == 1 else (n, k): streams stream..stream+k-1 of each uid."""
    if np.ndim(uid) == 1 and len(uid) >= 16:  # the numba twin (same bits) but for tiny arrays
        from legacylake.photometry.sim.kernels.randoms import uniforms_kernel

        out = uniforms_kernel(np.ascontiguousarray(uid, dtype=np.int64), np.uint64(key), int(stream), int(k))
        return out[:, 0] if k == 1 else out
    u = np.asarray(uid).astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        base = _mix(u * _GOLD ^ key)
        s = (np.arange(stream, stream + k, dtype=np.uint64) + _U64(1)) * _C2
        h = _mix(base[:, None] + s[None, :]) if k > 1 else _mix(base + s[0])
    return ((h >> _U64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def normals(uid: np.ndarray, key: np.uint64, stream: int, k: int = 1) -> np.ndarray:
    """Standard normals, shape (n,) if k == 1 else (n, k): the table normals of
    :func:`legacylake.photometry.sim.kernels.common.normal_at` (16-bit quantiles, four per hash word, tails cut at
    |z| = 4.3) of words stream+1.. of each uid; numba kernel but for tiny arrays, same values."""
    from legacylake.photometry.sim.kernels.common import NORMAL_TABLE, table_normals_np

    if np.ndim(uid) == 1 and len(uid) >= 16:
        from legacylake.photometry.sim.kernels.randoms import table_normals_kernel

        out = table_normals_kernel(np.ascontiguousarray(uid, dtype=np.int64), np.uint64(key), int(stream), int(k),
                                   NORMAL_TABLE)
    else:
        out = table_normals_np(np.asarray(uid), np.uint64(key), int(stream), int(k))
    return out[:, 0] if k == 1 else out


def unit_vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors of (ra, dec) in degrees."""
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    c = np.cos(dec)
    return np.stack([c * np.cos(ra), c * np.sin(ra), np.sin(dec)], axis=-1)


class SmoothField:
    """A smooth, zero-mean, unit-variance random field on the sphere.

    Sum of ``nwaves`` plane waves in 3-D with random directions and wavelengths between
    ``lmin`` and ``lmax`` degrees (as chord lengths on the unit sphere), seeded by
    (seed, salt): the same field wherever and in whatever order it is evaluated.
    """

    def __init__(self, seed: int, salt: int, lmin: float = 0.3, lmax: float = 6.0, nwaves: int = 6):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7919, salt])
        v = rng.normal(size=(nwaves, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        lam = np.deg2rad(np.exp(rng.uniform(np.log(lmin), np.log(lmax), nwaves)))
        self.k = v * (2 * np.pi / lam)[:, None]
        self.phase = rng.uniform(0, 2 * np.pi, nwaves)
        self.amp = np.sqrt(2.0 / nwaves)

    def __call__(self, xyz: np.ndarray) -> np.ndarray:
        """Field values at (n, 3) unit vectors."""
        return self.amp * np.cos(xyz @ self.k.T + self.phase).sum(axis=1)


_FIELD_CACHE: dict = {}


def _field_set(seed: int, specs) -> tuple:
    """(K (m, 3), phase, amp, group starts) of several :class:`SmoothField` (salt, lmin, lmax)."""
    key = (int(seed), tuple(specs))
    if key not in _FIELD_CACHE:
        fs = [SmoothField(seed, *sp) for sp in specs]
        K = np.ascontiguousarray(np.concatenate([f.k for f in fs]))
        ph = np.concatenate([f.phase for f in fs])
        amp = np.concatenate([np.full(len(f.phase), f.amp) for f in fs])
        gstart = np.concatenate([[0], np.cumsum([len(f.phase) for f in fs])]).astype(np.int64)
        if len(_FIELD_CACHE) > 16:
            _FIELD_CACHE.clear()
        _FIELD_CACHE[key] = (K, ph, amp, gstart)
    return _FIELD_CACHE[key]


def eval_fields(ra: np.ndarray, dec: np.ndarray, seed: int, specs: list[tuple[int, float, float]],
                dense: np.ndarray | None = None) -> np.ndarray:
    """Several :class:`SmoothField` (salt, lmin, lmax) at (ra, dec) deg: (n, len(specs)),
    interpolated from the global grid of :mod:`legacylake.photometry.sim.kernels.fields` (same value for a position
    whichever region is evaluated; ``dense``: see :func:`legacylake.photometry.sim.kernels.fields.grid_fields`)."""
    from legacylake.photometry.sim.kernels.fields import grid_fields

    K, ph, amp, gstart = _field_set(seed, specs)
    return grid_fields(ra, dec, K, ph, amp, gstart, dense=dense)
