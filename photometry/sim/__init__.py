"""The synthetic sky: truth sources, simulated Tractor catalogs and simulated CCD images.

Owns: :mod:`.sky` (truth sources from smooth random fields), :mod:`.catalog` (catalogs of
bricks, external Gaia/SDSS-like catalogs), :mod:`.measure` (the measurement model: truth to
catalog rows) with :mod:`.records` and :mod:`.refstars`, :mod:`.images` (CCD-like exposures
rendered with GalSim, :mod:`.galsim_truth`), :mod:`.conditions` (observing conditions),
:mod:`.rng` (counter-based randoms), :mod:`.fitswriter` (deterministic FITS tables), and the
numba kernels in :mod:`legacylake.photometry.sim.kernels`.

May import: :mod:`legacylake.photometry.model`, :mod:`legacylake.catalogs_schema`,
:mod:`legacylake.errors`; never :mod:`legacylake.photometry.brick`.
"""
