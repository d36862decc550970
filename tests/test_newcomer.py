"""A new user's first hour (issue 15 item 4): the demo's density map and legend, numba's
first-run notice, errors on stderr."""

import io
import subprocess
import sys
import textwrap

import numpy as np


def test_sky_density_is_per_deg2_and_marks_unsimulated_cells():
    from legacylake.demo_plots import sky_density

    rng = np.random.default_rng(1)
    box = (150.0, 150.5, 2.0, 2.25)
    n = 200_000
    ra = rng.uniform(box[0], box[1], n)
    dec = np.rad2deg(np.arcsin(rng.uniform(*np.sin(np.deg2rad(box[2:])), n)))  # uniform on the sphere
    area = np.deg2rad(box[1] - box[0]) * (np.sin(np.deg2rad(box[3])) - np.sin(np.deg2rad(box[2]))) * (180 / np.pi) ** 2
    # a second, empty box next to it: covered, so density 0 there, not NaN
    g = sky_density(ra, dec, [box, (150.5, 150.75, 2.0, 2.25)], cell_arcmin=1.0)
    d = g["density"]
    assert g["cell_arcmin"] == 1.0
    inner = d[:, (g["ra_edges"][1:] < box[1] - 0.02) & (g["ra_edges"][:-1] > box[0] + 0.02)]
    assert abs(np.nanmedian(inner) / (n / area) - 1) < 0.05  # sources per deg^2, not per cell
    assert np.nanmax(inner) < 2 * n / area
    right = d[:, g["ra_edges"][:-1] > box[1] + 0.02]
    assert np.all(right == 0)
    # only the boxes' union is covered: a box with a missing corner gives NaN cells there
    g2 = sky_density(ra, dec, [(150.0, 150.5, 2.0, 2.125), (150.0, 150.25, 2.125, 2.25)], cell_arcmin=1.0)
    corner = g2["density"][g2["dec_edges"][:-1] > 2.14][:, g2["ra_edges"][:-1] > 150.27]
    assert corner.size and np.all(np.isnan(corner))


def test_pixel_squares_are_outlined():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from legacylake.demo_plots import draw_sky, pixel_squares, sky_density

    sq = pixel_squares(["1503p022", "1501p022"], 700)
    assert [s[0] for s in sq] == ["1503p022", "1501p022"]
    for _, r1, r2, d1, d2 in sq:
        assert abs((d2 - d1) - 700 * 0.262 / 3600) < 1e-3 and r1 < r2
    g = sky_density([150.3], [2.25], [s[1:] for s in sq])
    fig, ax = plt.subplots()
    _, outlines = draw_sky(ax, g, sq)
    assert len(outlines) == 2 and not outlines[0].get_fill()
    plt.close(fig)


def test_colour_magnitude_legend_is_off_the_data():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from legacylake.demo_plots import cmd_figure

    rng = np.random.default_rng(0)
    r, gr = rng.uniform(14, 25, 500), rng.uniform(-0.5, 2.5, 500)
    fig, ax, leg = cmd_figure(r, gr, rng.random(500) < 0.3)
    fig.canvas.draw()
    a, b = ax.get_window_extent(), leg.get_window_extent()
    assert not a.overlaps(b), (a, b)
    plt.close(fig)


def test_numba_notice_only_when_kernels_are_not_cached(tmp_path, monkeypatch):
    from legacylake.progress import numba_notice, uncached_kernels

    (tmp_path / "nl_kernels_mod.py").write_text(textwrap.dedent("""
        import numba

        @numba.njit(cache=True)
        def twice(x):
            return 2 * x

        @numba.njit
        def uncachable(x):
            return x
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert uncached_kernels(["nl_kernels_mod"]) == ["nl_kernels_mod.twice"]
    err = io.StringIO()
    assert numba_notice(["nl_kernels_mod"], file=err) == 1
    assert "compiling numba kernels (first run only" in err.getvalue()
    import nl_kernels_mod
    assert nl_kernels_mod.twice(2) == 4  # compiles and writes the cache
    # a new process (the next run) finds it in the cache and says nothing
    code = ("import io, sys; sys.path.insert(0, %r); from legacylake.progress import numba_notice; "
            "e = io.StringIO(); print(numba_notice(['nl_kernels_mod'], file=e), repr(e.getvalue()))" % str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path.parent)
    assert r.returncode == 0 and r.stdout.split() == ["0", "''"], r.stdout + r.stderr


def test_no_command_prints_help_on_stderr_and_fails():
    r = subprocess.run([sys.executable, "-m", "legacylake"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr and r.stdout == ""


def test_cli_works_when_the_clone_folder_shadows_the_package(tmp_path):
    """Python started beside a clone named legacylake: that folder becomes a namespace package
    (editable install); the command and the subpackages must not need the package's __init__."""
    import os

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "legacylake").symlink_to(repo, target_is_directory=True)
    r = subprocess.run([sys.executable, "-m", "legacylake", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("legacylake "), r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", "import legacylake.etl, legacylake.query"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_demo_kernel_lists_name_real_kernel_modules():
    """A moved or renamed kernel module must not silently drop out of the first-run notice."""
    import importlib

    from numba.core.dispatcher import Dispatcher

    from legacylake import progress

    for name in progress.PHOTOMETRY_KERNELS + progress.SIMULATE_KERNELS + progress.XMATCH_KERNELS:
        mod = importlib.import_module(name)
        assert any(isinstance(v, Dispatcher) for v in vars(mod).values()), name
