"""numba helpers shared by the simulator's kernels: counter-based normals keyed by source
uid, and big-endian stores into a FITS record buffer (``uint8[nrows, itemsize]``).

Normals come from a 65,536-entry table of standard-normal quantiles indexed by 16-bit chunks
of a splitmix64 hash of (key, uid, stream): four normals per hash, no transcendental calls,
identical in the numba kernels and their numpy twins (:func:`table_normals_np`). The table's
tails stop at |z| = 4.3.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from scipy.special import ndtri

from legacylake.photometry.sim.kernels.splitmix import C2 as _C2, GOLD as _GOLD, mix as _mix

#: Standard-normal quantiles at (i + 0.5) / 65536, i = 0..65535.
NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536.0)


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finaliser (uint64, wrapping)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def uid_base(uid, key):
    """Per-source hash base (as :func:`legacylake.photometry.sim.rng.uniforms`)."""
    return mix64(np.uint64(uid) * np.uint64(0x9E3779B97F4A7C15) ^ key)


@njit(cache=True, inline="always")
def normal_at(base, stream, j, table):
    """The j-th normal of ``stream`` (4 normals per hashed stream word)."""
    h = mix64(base + np.uint64(stream + j // 4 + 1) * np.uint64(0x94D049BB133111EB))
    return table[(h >> np.uint64(16 * (j % 4))) & np.uint64(0xFFFF)]


@njit(cache=True, inline="always")
def normals_into(out, k, base, stream, table):
    """out[j] = :func:`normal_at` (base, stream, j, table) for j < k, one hash per 4 normals."""
    for w in range((k + 3) // 4):
        h = mix64(base + np.uint64(stream + w + 1) * np.uint64(0x94D049BB133111EB))
        for q in range(4):
            j = 4 * w + q
            if j < k:
                out[j] = table[(h >> np.uint64(16 * q)) & np.uint64(0xFFFF)]


def table_normals_np(uid: np.ndarray, key: np.uint64, stream: int, k: int) -> np.ndarray:
    """numpy twin of :func:`normal_at`: (n, k) normals j = 0..k-1 of ``stream`` per uid."""
    u = np.asarray(uid).astype(np.uint64, copy=False)
    nw = (k + 3) // 4
    with np.errstate(over="ignore"):
        base = _mix(u * _GOLD ^ np.uint64(key))
        s = (np.arange(stream, stream + nw, dtype=np.uint64) + np.uint64(1)) * _C2
        h = _mix(base[:, None] + s[None, :])
    j = np.arange(k)
    chunks = (h[:, j // 4] >> (np.uint64(16) * (j % 4).astype(np.uint64))) & np.uint64(0xFFFF)
    return NORMAL_TABLE[chunks.astype(np.int64)]


def _store_be(bits: int):
    """An intrinsic storing an unsigned ``bits``-bit integer big-endian (one unaligned store)
    at byte position ``pos`` of a C-contiguous uint8 array."""

    @intrinsic
    def store(typingctx, buf, pos, val):
        def codegen(context, builder, signature, args):
            ary, p, v = args
            data = context.make_array(signature.args[0])(context, builder, ary).data
            ptr = builder.bitcast(builder.gep(data, [p]), ir.IntType(bits).as_pointer())
            builder.store(builder.bswap(v) if bits > 8 else v, ptr, align=1)
            return context.get_dummy_value()

        return types.void(buf, pos, val), codegen

    return store


_store_be16, _store_be32, _store_be64 = _store_be(16), _store_be(32), _store_be(64)


#: llvm.prefetch's mangled name: opaque pointers (p0) from LLVM 15 on, i8* before.
_PREFETCH_NAME = "llvm.prefetch.p0" if llvm_version_info >= (15,) else "llvm.prefetch.p0i8"


@intrinsic
def prefetch(typingctx, arr, pos):
    """Hint the CPU to fetch element ``pos`` (flat index) of the C-contiguous array ``arr`` into
    the L2 cache (``llvm.prefetch``, read, locality 2); no effect on values."""

    def codegen(context, builder, signature, args):
        ary, p = args
        data = context.make_array(signature.args[0])(context, builder, ary).data
        ptr = builder.bitcast(builder.gep(data, [p]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH_NAME)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, pos), codegen


@njit(cache=True, inline="always")
def prefetch_rows(M, i0, i1):
    """Prefetch columns i0 and i1 - 1 (the ends of a short run) of every row of the
    C-contiguous 2-D array ``M`` (0 <= i0 < i1 <= M.shape[1])."""
    n = M.shape[1]
    for r in range(M.shape[0]):
        prefetch(M, r * n + i0)
        prefetch(M, r * n + i1 - 1)


@njit(cache=True, inline="always")
def put_f4(buf, i, off, v):
    """Store float32(v) big-endian at buf[i, off:off+4] (``buf`` C-contiguous uint8[n, itemsize])."""
    _store_be32(buf, i * buf.shape[1] + off, np.float32(v).view(np.uint32))


@njit(cache=True, inline="always")
def put_f8(buf, i, off, v):
    """Store float64(v) big-endian at buf[i, off:off+8]."""
    _store_be64(buf, i * buf.shape[1] + off, np.float64(v).view(np.uint64))


@njit(cache=True, inline="always")
def put_i2(buf, i, off, v):
    """Store int16(v) big-endian at buf[i, off:off+2]."""
    _store_be16(buf, i * buf.shape[1] + off, np.uint16(np.int16(v)))


@njit(cache=True, inline="always")
def put_i4(buf, i, off, v):
    """Store int32(v) big-endian at buf[i, off:off+4]."""
    _store_be32(buf, i * buf.shape[1] + off, np.uint32(np.int32(v)))


@njit(cache=True, inline="always")
def put_i8(buf, i, off, v):
    """Store int64(v) big-endian at buf[i, off:off+8]."""
    _store_be64(buf, i * buf.shape[1] + off, np.uint64(v))


def record_buffer(rec: np.ndarray) -> np.ndarray:
    """The (nrows, itemsize) uint8 view of a structured array the kernels write into."""
    return rec.view(np.uint8).reshape(len(rec), rec.dtype.itemsize)


def field_offset(dtype: np.dtype, name: str) -> int:
    """Byte offset of field ``name`` (-1 if absent)."""
    return int(dtype.fields[name][1]) if name in dtype.fields else -1
