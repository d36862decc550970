"""numba kernels of the simulator, one small module per job (each with a plain-numpy twin in
the tests): hashing and normals (:mod:`.splitmix`, :mod:`.common`, :mod:`.randoms`), random
fields (:mod:`.fields`), truth generation (:mod:`.truth`), projection (:mod:`.tan`,
:mod:`.healpix`), blending and neighbours (:mod:`.blend`, :mod:`.pairs`, :mod:`.disks`),
measurement columns (:mod:`.apflux`, :mod:`.dchisq`, :mod:`.lc`, :mod:`.select`) and the FITS
record writer (:mod:`.pack`, :mod:`.record`).

May import: :mod:`legacylake.photometry.model` (model selection rules) and each other.
"""
