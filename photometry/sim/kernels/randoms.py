"""uid-keyed random numbers for whole arrays of sources: numba kernels whose numpy twins are
:func:`legacylake.photometry.sim.kernels.common.table_normals_np` (table normals) and :func:`legacylake.photometry.sim.records.uniforms16`
(16-bit uniforms, four per splitmix64 hash)."""

from __future__ import annotations

import numpy as np
from numba import njit

from legacylake.photometry.sim.kernels.common import mix64, normals_into, uid_base


@njit(cache=True)
def table_normals_kernel(uid, key, stream, k, table):
    """(n, k) normals j = 0..k-1 of ``stream`` per uid (as :func:`legacylake.photometry.sim.kernels.common.normal_at`)."""
    out = np.empty((uid.shape[0], k))
    for i in range(uid.shape[0]):
        normals_into(out[i], k, uid_base(uid[i], key), stream, table)
    return out


@njit(cache=True)
def uniforms_kernel(uid, key, stream, k):
    """(n, k) uniforms in (0, 1), 53-bit, streams stream..stream+k-1 of each uid: the numba twin
    of :func:`legacylake.photometry.sim.rng.uniforms` (same bits)."""
    out = np.empty((uid.shape[0], k))
    for i in range(uid.shape[0]):
        base = uid_base(uid[i], key)
        for j in range(k):
            h = mix64(base + np.uint64(stream + j + 1) * np.uint64(0x94D049BB133111EB))
            out[i, j] = (np.float64(h >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)
    return out


@njit(cache=True)
def table_normals_t_kernel(uid, key, stream, k, table):
    """(k, n) normals: the transpose of :func:`table_normals_kernel`, written row by row so each
    normal j is a contiguous row (columns read by numpy without strides)."""
    n = uid.shape[0]
    out = np.empty((k, n))
    for i in range(n):
        base = uid_base(uid[i], key)
        for w in range((k + 3) // 4):
            h = mix64(base + np.uint64(stream + w + 1) * np.uint64(0x94D049BB133111EB))
            for q in range(4):
                j = 4 * w + q
                if j < k:
                    out[j, i] = table[(h >> np.uint64(16 * q)) & np.uint64(0xFFFF)]
    return out


@njit(cache=True)
def uniforms16_t_kernel(uid, key, k):
    """(k, n) uniforms (v + 0.5) / 65536 from the 16-bit chunks of hashes 1, 2, ... of each uid
    (row j = uniform j of every uid, contiguous; numpy twin: :func:`legacylake.photometry.sim.records.uniforms16`, transposed)."""
    n = uid.shape[0]
    out = np.empty((k, n))
    for i in range(n):
        base = uid_base(uid[i], key)
        for w in range((k + 3) // 4):
            h = mix64(base + np.uint64(w + 1) * np.uint64(0x94D049BB133111EB))
            for q in range(4):
                j = 4 * w + q
                if j < k:
                    out[j, i] = (np.float64((h >> np.uint64(16 * q)) & np.uint64(0xFFFF)) + 0.5) * (1.0 / 65536.0)
    return out
