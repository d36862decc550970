"""legacylake.photometry: Tractor-style forward-model photometry, and a simulated sky to run it on.

Subpackages, lowest first (each may import only those before it, plus
:mod:`legacylake.catalogs_schema` and :mod:`legacylake.errors`):

* :mod:`legacylake.photometry.model`: the image model: images and PSFs, Gaussian-mixture
  profiles, rendering and normal-equation kernels, the fitter and model selection.
* :mod:`legacylake.photometry.sim`: the synthetic sky: truth catalogs, simulated Tractor
  catalogs and CCD images, and their numba kernels (:mod:`legacylake.photometry.sim.kernels`).
* :mod:`legacylake.photometry.brick`: pixels to a catalog: reading survey images and
  calibrations, detection, blobs, fitting a brick, derived columns, validation.

The CLI modules here (``fit_cli``, ``simulate_cli``, ``sim_images_cli``, ``cli``) import their
stack only when a command runs.

>>> from legacylake.photometry import simulate_brick, measure_brick, select_type, run_brick
"""

from legacylake.lazy import attach

#: Public names, imported on first use (keeps the CLI fast).
attach(__name__, {
    "truth_sky": "legacylake.photometry.sim.catalog:truth_sky",
    "simulate_brick": "legacylake.photometry.sim.catalog:simulate_brick",
    "write_bricks": "legacylake.photometry.sim.catalog:write_bricks",
    "measure_brick": "legacylake.photometry.sim.measure:measure_brick",
    "select_type": "legacylake.photometry.model.selection:select_type",
    "run_brick": "legacylake.photometry.brick.run:run_brick",
})
