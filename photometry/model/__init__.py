"""The image model of the photometry: what a source looks like on a CCD and how it is fitted.

Owns: :mod:`.image` (images, WCS, noise), :mod:`.psf` (Gaussian-mixture and PsfEx PSFs),
:mod:`.mixtures` and :mod:`.mixture_bounds` (EXP/DEV/SER profiles as Gaussian mixtures),
:mod:`.render` and its numba kernels (:mod:`.render_kernels`, :mod:`.normal_kernels`),
:mod:`.fitter` (joint least-squares fit of sources), :mod:`.select` and :mod:`.selection`
(penalised-chi2 model choice, DR9 and DR4 rules), :mod:`.ellipse`, :mod:`.sersic_fit`.

May import: :mod:`legacylake.catalogs_schema`, :mod:`legacylake.errors`; nothing else of
legacylake (the simulator and the brick pipeline build on it, not the reverse).
"""
