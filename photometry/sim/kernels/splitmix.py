"""splitmix64 hashing on uint64 numpy arrays: the constants and finaliser that every
counter-based random number of the simulator starts from (numpy side; the numba kernels in
:mod:`legacylake.photometry.sim.kernels.common` use the same constants)."""

from __future__ import annotations

import numpy as np

_U64 = np.uint64
GOLD = _U64(0x9E3779B97F4A7C15)
C1 = _U64(0xBF58476D1CE4E5B9)
C2 = _U64(0x94D049BB133111EB)


def mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> _U64(30))) * C1
    z = (z ^ (z >> _U64(27))) * C2
    return z ^ (z >> _U64(31))
