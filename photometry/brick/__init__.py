"""Pixels to a catalog: ``legacylake photometry run-brick`` and what it is made of.

Owns: the region (:mod:`.target`), reading exposures (:mod:`.exposure`, :mod:`.images` for
simulated images, :mod:`.cp` for the survey's CP images with :mod:`.ccds` and
:mod:`.calib`), reference catalogs and masks (:mod:`.references`), detection
(:mod:`.detect`), blobs and source fitting (:mod:`.sources`, :mod:`.fit`,
:mod:`.iterative`), coadds (:mod:`.coadds`), derived columns (:mod:`.derived`), the DR9 and
DR4 catalog (:mod:`.catalog`, :mod:`.dr4`), the pipeline (:mod:`.run`) and checks against
truth (:mod:`.validate`) or Gaia (:mod:`.validate_real`).

May import: :mod:`legacylake.photometry.model`, :mod:`legacylake.photometry.sim` (to simulate
its inputs and share the simulator's measurement code), :mod:`legacylake.catalogs_schema`,
:mod:`legacylake.errors`.
"""
