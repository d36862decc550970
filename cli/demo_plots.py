"""The demo's two pictures: sky density in sources per deg^2 and a colour-magnitude diagram.

``sky_density(ra, dec, areas, cell_arcmin)`` is the data: counts on a regular RA/Dec grid divided
by each cell's solid angle times the fraction of it that was simulated (``areas``: RA/Dec boxes,
the simulated bricks and the imaged squares of the pixel bricks); cells less than half covered
are NaN (drawn grey: not simulated), so the un-imaged rest of a pixel brick is not a "hole" in the
data. ``pixel_squares`` gives the imaged squares, which ``draw_sky`` outlines.
"""

from __future__ import annotations

import numpy as np

#: Default cell size of the density map, arcmin.
CELL_ARCMIN = 1.0
#: Sub-samples per cell side used to measure the covered fraction of a cell.
_SUB = 6


def pixel_squares(pixel_bricks, size: int) -> list[tuple[str, float, float, float, float]]:
    """(brick, ra1, ra2, dec1, dec2) of the central ``size`` x ``size`` px imaged in each pixel brick."""
    from legacylake.catalogs_schema import bricks
    from legacylake.photometry.sim.images import region

    out = []
    for b in pixel_bricks:
        x0, x1, y0, y1 = region(b, size)
        corners = np.array([[x0 - 0.5, y0 - 0.5], [x1 - 0.5, y0 - 0.5], [x0 - 0.5, y1 - 0.5], [x1 - 0.5, y1 - 0.5]])
        rd = bricks.brick_wcs(b).all_pix2world(corners, 0)
        out.append((b, float(rd[:, 0].min()), float(rd[:, 0].max()), float(rd[:, 1].min()), float(rd[:, 1].max())))
    return out


def sky_density(ra, dec, areas, cell_arcmin: float = CELL_ARCMIN, min_cover: float = 0.5) -> dict:
    """Sources per deg^2 on a regular RA/Dec grid over the union of ``areas`` ((ra1, ra2, dec1, dec2)
    boxes, degrees, not across RA 0). Returns ra_edges, dec_edges, density [n_dec, n_ra] (NaN where
    less than ``min_cover`` of the cell is covered), counts, cover (fraction), cell_arcmin."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    boxes = np.array([a[-4:] for a in areas], float).reshape(-1, 4)
    c = cell_arcmin / 60.0
    dec_edges = np.arange(boxes[:, 2].min(), boxes[:, 3].max() + c, c)
    dec_mid = 0.5 * (dec_edges[0] + dec_edges[-1])
    cra = c / np.cos(np.deg2rad(dec_mid))  # cells about square on the sky
    ra_edges = np.arange(boxes[:, 0].min(), boxes[:, 1].max() + cra, cra)
    counts, _, _ = np.histogram2d(dec, ra, bins=[dec_edges, ra_edges])
    # covered fraction of each cell, from _SUB x _SUB sample points
    f = (np.arange(_SUB) + 0.5) / _SUB
    sr = (ra_edges[:-1, None] + f[None, :] * cra).ravel()
    sd = (dec_edges[:-1, None] + f[None, :] * c).ravel()
    gd, gr = np.meshgrid(sd, sr, indexing="ij")
    inside = np.zeros(gd.shape, bool)
    for r1, r2, d1, d2 in boxes:
        inside |= (gr >= r1) & (gr < r2) & (gd >= d1) & (gd < d2)
    cover = inside.reshape(len(dec_edges) - 1, _SUB, len(ra_edges) - 1, _SUB).mean(axis=(1, 3))
    # solid angle of each cell, deg^2
    area = (np.rad2deg(np.diff(np.sin(np.deg2rad(dec_edges))))[:, None] * np.diff(ra_edges)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(cover >= min_cover, counts / (area * cover), np.nan)
    return {"ra_edges": ra_edges, "dec_edges": dec_edges, "density": density, "counts": counts,
            "cover": cover, "cell_arcmin": float(cell_arcmin)}


def draw_sky(ax, grid: dict, squares=()) -> list:
    """Draw ``sky_density``'s grid on ``ax`` (grey: not simulated) and outline ``squares``; returns
    (mesh, [outline patches])."""
    from matplotlib.patches import Rectangle

    ax.set_facecolor("0.85")
    mesh = ax.pcolormesh(grid["ra_edges"], grid["dec_edges"], np.ma.masked_invalid(grid["density"]),
                         cmap="viridis", shading="flat")
    outlines = []
    for i, (b, r1, r2, d1, d2) in enumerate(squares):
        p = Rectangle((r1, d1), r2 - r1, d2 - d1, fill=False, edgecolor="red", linewidth=1.2,
                      label="measured from simulated pixels" if i == 0 else None)
        ax.add_patch(p)
        outlines.append(p)
    ax.invert_xaxis()
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    return mesh, outlines


def sky_png(path: str, ra, dec, sim_areas, squares=(), cell_arcmin: float = CELL_ARCMIN) -> dict:
    """Write the density PNG; returns the grid (``sky_density``) with the outlines drawn."""
    import matplotlib.pyplot as plt

    grid = sky_density(ra, dec, list(sim_areas) + [s[1:] for s in squares], cell_arcmin)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    mesh, outlines = draw_sky(ax, grid, squares)
    c = grid["cell_arcmin"]
    ax.set_title(f"legacylake demo: primary sources per deg$^2$ ({c:g}' x {c:g}' cells)")
    fig.colorbar(mesh, ax=ax, label="primary sources per deg$^2$")
    if squares:
        fig.text(0.01, 0.01, f"red squares: centres of {', '.join(s[0] for s in squares)} measured from simulated "
                 "pixels; grey: rest of those bricks, not imaged", fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    grid["outlines"] = len(outlines)
    return grid


def cmd_figure(r, gr, psf):
    """Colour-magnitude figure with the legend below the axes (off the data); returns (fig, ax, legend)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6.6))
    ax.scatter(gr[~psf], r[~psf], s=1, alpha=0.3, label="galaxies (REX/EXP/DEV/SER)")
    ax.scatter(gr[psf], r[psf], s=1, alpha=0.5, label="point sources (PSF)")
    ax.set_xlim(-0.5, 2.5)
    ax.set_ylim(25, 14)
    ax.set_xlabel("g - r (dereddened) [mag]")
    ax.set_ylabel("r (dereddened) [mag]")
    ax.set_title("legacylake demo: colour-magnitude diagram")
    fig.subplots_adjust(bottom=0.17)
    leg = fig.legend(loc="lower center", ncol=2, markerscale=8, frameon=False)
    return fig, ax, leg
