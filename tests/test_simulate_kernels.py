"""The simulator's numba kernels against their numpy twins."""

import numpy as np
import pytest

from legacylake.photometry.sim.kernels.apflux import aperture_gauss, apflux_kernel, apflux_np
from legacylake.photometry.sim.kernels.common import NORMAL_TABLE, field_offset, record_buffer, table_normals_np
from legacylake.photometry.sim.kernels.fields import bilinear_kernel, bilinear_np, grid_fields, node_kernel, node_np
from legacylake.photometry.sim.kernels.lc import lc_kernel, lc_np
from legacylake.photometry.sim.records import fits_record_dtype, uniforms16
from legacylake.photometry.sim.rng import SmoothField, _field_set, eval_fields, seed_key, unit_vectors

N = 300


@pytest.fixture
def rows():
    rng = np.random.default_rng(2)
    uid = rng.integers(1, 1 << 50, N)
    return uid, rng


def test_table_normals_distribution():
    z = table_normals_np(np.arange(20000), seed_key(1, 2), 0, 8)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert np.abs(z).max() < 4.4
    # a row's normals do not depend on the other rows asked for
    assert np.array_equal(table_normals_np(np.arange(100, 200), seed_key(1, 2), 0, 8), z[100:200])


def test_uniforms16_range_and_independence():
    u = uniforms16(np.arange(5000), seed_key(0, 4), 9)
    assert u.shape == (5000, 9) and u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.05
    assert np.array_equal(uniforms16(np.arange(10, 20), seed_key(0, 4), 9), u[10:20])


@pytest.mark.parametrize("rel,band", [("dr9", "G"), ("dr9", "W2"), ("dr4", "Z")])
def test_apflux_kernel_matches_numpy(rows, rel, band):
    uid, rng = rows
    dt = fits_record_dtype(rel)
    rec = np.zeros(N, dt)
    pre = "APFLUX", "APFLUX_IVAR", "APFLUX_RESID", "APFLUX_BLOBRESID", "APFLUX_MASKED"
    offs = np.array([field_offset(dt, f"{p}_{band}") for p in pre], np.int64)
    nr = dt[f"APFLUX_{band}"].shape[0]
    radii = np.linspace(0.5, 7.0, nr)
    args = (rng.uniform(-5, 500, N), rng.uniform(-5, 500, N), rng.uniform(0.3, 4, N), rng.uniform(1, 10, N),
            rng.uniform(10, 3000, N), np.where(rng.random(N) < 0.3, rng.random(N), 0.0))
    opt = not band.startswith("W")
    key = seed_key(3, 20)
    kargs = args[:2] + (aperture_gauss(args[2], radii),) + args[3:]
    apflux_kernel(record_buffer(rec), offs, uid, key, 0, NORMAL_TABLE, *kargs, radii, opt)
    ref = apflux_np(uid, key, 0, *args, radii, opt)
    for p, name in zip(pre, ("apflux", "ivar", "resid", "blobresid", "masked")):
        col = f"{p}_{band}"
        if col in dt.names:
            np.testing.assert_allclose(rec[col], ref[name].astype(np.float32), rtol=2e-6, atol=1e-6)
    # the other columns are untouched
    assert not rec["FLUX_G"].any()


@pytest.mark.parametrize("rel", ["dr9", "dr4"])
def test_lc_kernel_matches_numpy(rows, rel):
    uid, rng = rows
    dt = fits_record_dtype(rel)
    rec = np.zeros(N, dt)
    pre = "FLUX", "FLUX_IVAR", "NOBS", "FRACFLUX", "RCHISQ", "MJD", "EPOCH_INDEX"
    offs = np.array([field_offset(dt, f"LC_{p}_W1") for p in pre], np.int64)
    ne = dt["LC_FLUX_W1"].shape[0]
    args = (rng.uniform(0, 300, N), rng.uniform(0.01, 2, N), rng.integers(6, 16, N).clip(max=ne),
            rng.integers(8, 200, N), rng.uniform(0, 2, N), rng.uniform(55200, 55220, N), rng.random(N) < 0.2)
    key = seed_key(3, 30)
    lc_kernel(record_buffer(rec), offs, dt["LC_MJD_W1"].base.itemsize == 8, uid, key, 0, NORMAL_TABLE, *args, ne)
    ref = lc_np(uid, key, 0, *args, ne)
    for p in pre:
        col = f"LC_{p}_W1"
        if col not in dt.names:
            continue
        want = ref[p.lower()].astype(dt[col].base.newbyteorder("="))
        if dt[col].base.kind == "i":
            assert np.array_equal(rec[col], want), col
        else:
            np.testing.assert_allclose(rec[col], want, rtol=2e-6, atol=1e-6)
    assert (rec["LC_FLUX_IVAR_W1"][:, -1] == 0).any()  # unused epochs are zero


def test_field_kernels_match_numpy_and_truth():
    rng = np.random.default_rng(0)
    K, ph, amp, gs = _field_set(7, [(101, 0.2, 8.0), (220, 0.2, 3.0)])
    cols, rows_ = np.array([0, 1, 5, 23039, 23040]), np.array([3000, 3001, 7000])
    np.testing.assert_allclose(node_kernel(cols, rows_, K, ph, amp, gs), node_np(cols, rows_, K, ph, amp, gs),
                               rtol=0, atol=1e-12)
    vals = rng.normal(size=(4, 5, 2))
    ci, ri = rng.integers(0, 4, 50), rng.integers(0, 3, 50)
    wx, wy = rng.random(50), rng.random(50)
    np.testing.assert_allclose(bilinear_kernel(vals, ci, ri, wx, wy), bilinear_np(vals, ci, ri, wx, wy), atol=1e-14)
    # across RA 0, close to the exact field, and independent of the other points asked for
    ra = np.r_[rng.uniform(359.8, 360, 300), rng.uniform(0, 0.2, 300)]
    dec = rng.uniform(-1, 1, 600)
    g = eval_fields(ra, dec, 7, [(101, 0.2, 8.0)])[:, 0]
    exact = SmoothField(7, 101, lmin=0.2, lmax=8.0)(unit_vectors(ra, dec))
    assert np.abs(g - exact).max() < 0.03
    assert np.array_equal(eval_fields(ra[::5], dec[::5], 7, [(101, 0.2, 8.0)])[:, 0], g[::5])
    np.testing.assert_allclose(grid_fields(ra, dec, K, ph, amp, gs, use_numba=False),
                               grid_fields(ra, dec, K, ph, amp, gs), atol=1e-12)
    # a compact group plus scattered points: the scattered ones on their own four nodes, same values
    ra2 = np.r_[rng.uniform(150.0, 150.25, 400), rng.uniform(149.6, 150.7, 30), rng.uniform(359.9, 360, 5)]
    dec2 = np.r_[rng.uniform(2.0, 2.25, 400), rng.uniform(1.6, 2.7, 30), rng.uniform(1.0, 1.1, 5)]
    dense = np.arange(len(ra2)) < 400
    assert np.array_equal(grid_fields(ra2, dec2, K, ph, amp, gs, dense=dense), grid_fields(ra2, dec2, K, ph, amp, gs))
    assert np.array_equal(grid_fields(ra2, dec2, K, ph, amp, gs, dense=np.zeros(len(ra2), bool)),
                          grid_fields(ra2, dec2, K, ph, amp, gs))


@pytest.mark.parametrize("rel", ["dr9", "dr4"])
def test_pack_kernel_matches_numpy(rows, rel):
    from legacylake.photometry.sim.kernels.pack import pack_kernel, pack_np
    from legacylake.photometry.sim.records import _pack_plan

    uid, rng = rows
    plan, strings = _pack_plan(rel)
    dt = fits_record_dtype(rel)
    F, I = plan.matrices(N)
    F[:] = rng.normal(0, 1e3, F.shape) * 10.0 ** rng.integers(-30, 30, F.shape)
    I[:] = rng.integers(-(1 << 62), 1 << 62, I.shape)  # wraps in the narrow types as numpy does
    I[:, :5] = [0, 1, -1, 255, 1 << 40]
    a, b = np.zeros(N, dt), np.zeros(N, dt)
    pack_kernel(record_buffer(a), F, plan.foffs, plan.fcodes, I, plan.ioffs, plan.icodes)
    pack_np(b, plan, F, I)
    assert a.tobytes() == b.tobytes()
    logical = [nm for nm, j in plan.islots if plan.icodes[plan.irow[nm]] == 0]
    assert logical and set(np.unique(a[logical[0]])) == {ord("T"), ord("F")}
    # every non-string column is packed but the kernels' (apflux of observed bands, lc_*), strings are not
    kern = tuple(f"_{bd}" for bd in ("G", "R", "Z", "W1", "W2", "W3", "W4"))
    assert {nm for nm, _ in plan.fslots} | {nm for nm, _ in plan.islots} | set(strings) == {
        n for n in dt.names if not ((n.startswith("APFLUX") and n.endswith(kern)) or n.startswith("LC_"))}
    assert not a[strings[0]].any()


@pytest.mark.parametrize("rel", ["dr9", "dr4"])
def test_bytes_rows_matches_structured_assignment(rows, rel):
    from legacylake.photometry.sim.kernels.pack import bytes_rows, string_matrix
    from legacylake.photometry.sim.records import _pack_plan

    uid, rng = rows
    plan, strings = _pack_plan(rel)
    dt = fits_record_dtype(rel)
    words = np.array([b"", b"G2", b"PSF", b"SIMP", b"1503p022", b"toolongforthefield"])
    cols = {nm.lower(): words[rng.integers(0, len(words), N)] for nm in strings}
    cols[strings[0].lower()] = cols[strings[0].lower()].astype("S2")  # narrower than the field
    a, b = np.zeros(N, dt), np.zeros(N, dt)
    S, soffs, sstart = string_matrix(dt, strings, cols, N)
    buf = record_buffer(a)
    bytes_rows(buf, 0, 0, 100, S, soffs, sstart)
    bytes_rows(buf[100:], 0, 100, N, S, soffs, sstart)  # any row blocks
    for nm in strings:
        b[nm] = cols[nm.lower()]
    assert a.tobytes() == b.tobytes()


def test_truth_kernel_matches_numpy():
    from legacylake.photometry.sim.kernels.truth import truth_columns, truth_np
    from legacylake.photometry.sim.sky import _truth_constants

    rng = np.random.default_rng(4)
    n = 3000
    pop = rng.integers(0, 3, n).astype(np.int8)
    m = rng.uniform(9, 25, n)
    u = rng.uniform(1e-9, 1, (n, 6))
    z = rng.normal(size=(n, 8))
    ebv = rng.uniform(0, 0.5, n)
    consts = _truth_constants()
    out, morph = truth_columns(pop, m, u, z, ebv, *consts)
    ref, ref_morph = truth_np(pop, m, u, z, ebv, *consts)
    assert np.array_equal(morph, ref_morph) and set(np.unique(morph[pop == 1])) == {1, 2, 3}
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
    assert np.array_equal(out.astype(np.float32), ref.astype(np.float32))


def test_disks_kernel_matches_numpy():
    from legacylake.photometry.sim.kernels.disks import disks_kernel, disks_np

    rng = np.random.default_rng(5)
    px, py = rng.uniform(-500, 500, 4000), rng.uniform(-500, 500, 4000)
    cx, cy, r = rng.uniform(-600, 600, 25), rng.uniform(-600, 600, 25), rng.uniform(1, 200, 25)
    ysort = np.argsort(py, kind="stable")
    out = np.zeros(4000, bool)
    disks_kernel(px, py, ysort, py[ysort], cx, cy, r, out)
    ref = disks_np(px, py, cx, cy, r)
    assert np.array_equal(out, ref) and 0 < ref.sum() < 4000


def test_pairs_kernel_matches_numpy_and_kdtree():
    from scipy.spatial import cKDTree

    from legacylake.photometry.sim.kernels.pairs import pairs_kernel, pairs_np

    rng = np.random.default_rng(6)
    x, y = rng.uniform(0, 400, 1500), rng.uniform(-50, 300, 1500)
    got = pairs_kernel(x, y, 8.0)
    assert np.array_equal(got, pairs_np(x, y, 8.0)) and len(got) > 100
    kd = cKDTree(np.stack([x, y], 1)).query_pairs(8.0, output_type="ndarray")
    assert {tuple(p) for p in kd} == {tuple(p) for p in got}
    assert pairs_kernel(x[:1], y[:1], 8.0).shape == (0, 2)
    # integer positions: shared cells, ties and pairs at exactly the radius
    xi, yi = np.round(x[:700] / 4), np.round(y[:700] / 4)
    assert np.array_equal(pairs_kernel(xi, yi, 8.0), pairs_np(xi, yi, 8.0))


@pytest.mark.parametrize("rel", ["dr9", "dr4"])
def test_select_kernel_matches_rules(rel):
    from legacylake.photometry.model.selection import select_index
    from legacylake.photometry.sim.kernels.select import select_index_fast

    rng = np.random.default_rng(7)
    d = rng.choice([0.0, 1.0, 10.0, 30.0, 100.0, 1e4], size=(20000, 5)) + rng.normal(0, 20, (20000, 5)) * (rng.random((20000, 5)) < 0.7)
    d[rng.random((20000, 5)) < 0.25] = 0.0
    d[:50, 3] = np.nan
    got = select_index_fast(d, rel)
    assert np.array_equal(got, select_index(d, rel))
    assert set(np.unique(got)) == {-1, 0, 1, 2, 3, 4}


def test_random_kernels_match_numpy():
    from legacylake.photometry.sim.kernels.randoms import table_normals_kernel

    uid = np.random.default_rng(8).integers(0, 1 << 60, 3000)
    key = seed_key(2, 5)
    assert np.array_equal(table_normals_kernel(uid, key, 3, 13, NORMAL_TABLE), table_normals_np(uid, key, 3, 13))
    # the transposed (k, n) variants: same values, rows contiguous
    from legacylake.photometry.sim.kernels.randoms import table_normals_t_kernel, uniforms16_t_kernel

    assert np.array_equal(table_normals_t_kernel(uid, key, 3, 13, NORMAL_TABLE), table_normals_np(uid, key, 3, 13).T)
    assert np.array_equal(uniforms16_t_kernel(uid, key, 44), uniforms16(uid, key, 44).T)


def test_healpix_kernel_matches_numpy_and_cdshealpix():
    import astropy.units as u
    import cdshealpix

    from legacylake.photometry.sim.kernels.healpix import healpix_nest_kernel, healpix_nest_np

    rng = np.random.default_rng(9)
    n = 200_000
    ra = rng.uniform(-10, 370, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    dec[:3] = [90.0, -90.0, 0.0]
    out = np.empty(n, np.int64)
    healpix_nest_kernel(ra, dec, 12, out)
    assert np.array_equal(out, healpix_nest_np(ra, dec, 12))
    ref = cdshealpix.nested.lonlat_to_healpix(np.mod(ra, 360) * u.deg, dec * u.deg, 12)
    assert np.array_equal(out, ref.astype(np.int64))


def test_blend_kernel_matches_numpy():
    from legacylake.photometry.sim.kernels.blend import blend_kernel, blend_np
    from legacylake.photometry.sim.kernels.pairs import pairs_kernel

    rng = np.random.default_rng(10)
    n = 2000
    x, y = rng.uniform(0, 300, n), rng.uniform(0, 300, n)
    pairs = pairs_kernel(x, y, 8.0)
    pi, pj = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
    d2 = (x[pi] - x[pj]) ** 2 + (y[pi] - y[pj]) ** 2
    flux = rng.normal(5, 10, (7, n))
    good = (flux[:3] > 0) & (rng.random((3, n)) < 0.9)
    args = (flux, good, rng.uniform(0.2, 0.8, n), rng.uniform(0.5, 3, n), rng.uniform(0.3, 4, (3, n)),
            np.array([6.7, 7.4, 7.6, 26.0]), pi, pj, d2)
    out = np.empty((3, n)), np.empty((3, n)), np.empty((7, n))
    blend_kernel(*args, *out)
    for a, b in zip(out, blend_np(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)
    assert (out[2][:3] > 0).sum() > 100 and len(pi) > 200


@pytest.mark.parametrize("dr9", [True, False])
def test_dchisq_kernel_matches_numpy(dr9):
    from legacylake.photometry.sim.kernels.dchisq import dchisq_kernel, dchisq_np

    rng = np.random.default_rng(11)
    n = 3000
    sg = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(0.05, 2, n))
    qq = rng.uniform(0.2, 1, n)
    args = (rng.uniform(0.4, 0.8, (3, n)), sg / np.sqrt(qq), sg * np.sqrt(qq), sg, rng.uniform(0.5, 6, n),
            rng.normal(50, 300, (3, n)))
    qtot = args[-1].sum(axis=0)
    zc = rng.normal(size=(n, 9))
    out = np.empty((n, 5))
    dchisq_kernel(*args, qtot, zc, dr9, 0.1, 0.02, out)
    np.testing.assert_allclose(out, dchisq_np(*args, qtot, zc, dr9, 0.1, 0.02), rtol=1e-12, atol=1e-9)


def test_uniforms_kernel_same_bits_as_numpy():
    from legacylake.photometry.sim import rng as sim_random
    from legacylake.photometry.sim.kernels.randoms import uniforms_kernel

    uid = np.random.default_rng(12).integers(0, 1 << 62, 1000)
    key = seed_key(4, 1)
    got = uniforms_kernel(uid, key, 3, 6)
    # the plain-numpy path (small inputs) and the kernel path (large inputs) agree bit for bit
    assert np.array_equal(got[:100], sim_random.uniforms(uid[:100], key, 3, 6))
    assert np.array_equal(got, sim_random.uniforms(uid, key, 3, 6))
    assert np.array_equal(got[:, 2], sim_random.uniforms(uid, key, 5, 1))


def test_tan_kernel_matches_numpy():
    from legacylake.photometry.sim.kernels.tan import tan_kernel, tan_np

    rng = np.random.default_rng(13)
    ra, dec = rng.uniform(359.5, 360.5, 5000) % 360.0, rng.uniform(-1, 1, 5000)
    out = np.empty(5000), np.empty(5000), np.empty(5000)
    tan_kernel(ra, dec, 0.1, 0.2, *out)
    for a, b in zip(out, tan_np(ra, dec, 0.1, 0.2)):
        assert np.array_equal(a, b)
