"""Crossmatch API: identical pairs to astropy on random catalogs with partition edges, RA=0/360, poles."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import astropy.units as u
from astropy.coordinates import SkyCoord, search_around_sky

import cdshealpix.nested as cn

from legacylake.errors import UserError
from legacylake.query.crossmatch import kernels as K
from legacylake.query.crossmatch import healpix29, match_order, propagate, xmatch
from legacylake.query.crossmatch.io import Lake
from legacylake.query.crossmatch.testing import write_test_lake

N_LAKE = 100_000
RADII = (1.0, 45.0)


def _random_sky(rng, n):
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def _edge_points(rng, n, depth):
    """Points on the boundaries of random order-``depth`` pixels (HEALPix cell edges)."""
    pix = rng.integers(0, 12 * 4**depth, n // 8 + 1).astype(np.uint64)
    lon, lat = cn.vertices(pix, depth, step=2)
    ra = lon.to_value(u.deg).ravel()
    dec = lat.to_value(u.deg).ravel()
    return ra[:n], dec[:n]


def _offset(rng, ra, dec, max_arcsec):
    c = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(
        rng.uniform(0, 2 * np.pi, ra.size) * u.rad, rng.uniform(0, max_arcsec, ra.size) * u.arcsec)
    return c.ra.deg, c.dec.deg


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    rng = np.random.default_rng(12345)
    parts = [_random_sky(rng, 60_000)]
    parts.append((rng.uniform(-0.05, 0.05, 8_000) % 360, rng.uniform(-60, 60, 8_000)))  # RA = 0/360
    parts.append((rng.uniform(0, 360, 4_000), rng.uniform(89.8, 90, 4_000)))  # north pole
    parts.append((rng.uniform(0, 360, 4_000), -rng.uniform(89.8, 90, 4_000)))  # south pole
    for depth in (1, 2, 3):
        parts.append(_edge_points(rng, 8_000, depth))
    ra = np.concatenate([p[0] for p in parts])[:N_LAKE]
    dec = np.concatenate([p[1] for p in parts])[:N_LAKE]
    ra, dec = _offset(rng, ra, dec, 20.0)
    n = ra.size
    lake = pa.table({"ra": ra, "dec": dec, "release": np.full(n, 9010, np.int16),
                     "brickid": np.arange(n, dtype=np.int32), "objid": np.arange(n, dtype=np.int32) % 5000,
                     "flux_r": rng.normal(10, 3, n).astype(np.float32)})
    root = tmp_path_factory.mktemp("xlake")
    write_test_lake(lake, root, "dr9", max_rows=2_500, row_group_rows=500)
    # external: lake rows moved by up to 1.5 x the largest radius, plus uniform sky
    m = 100_000
    idx = rng.integers(0, n, m - 20_000)
    era, edec = _offset(rng, ra[idx], dec[idx], 1.5 * max(RADII))
    near = rng.random(idx.size) < 0.5  # half of them within ~1.5 arcsec
    era2, edec2 = _offset(rng, ra[idx], dec[idx], 1.5)
    era = np.where(near, era2, era)
    edec = np.where(near, edec2, edec)
    ura, udec = _random_sky(rng, 20_000)
    era = np.concatenate([era, ura])
    edec = np.concatenate([edec, udec])
    ext = pa.table({"RA_DEG": era, "DEC_DEG": edec, "ext_id": np.arange(m, dtype=np.int64),
                    "gmag": rng.uniform(12, 21, m)})
    return root, lake, ext


def _coords(t, ra, dec):
    return SkyCoord(t.column(ra).to_numpy() * u.deg, t.column(dec).to_numpy() * u.deg)


def test_match_order_and_cells():
    assert match_order(1.0) >= 14
    assert match_order(3600.0) <= 6
    # a disc of the radius around any point stays in the 3x3 cells of match_order
    rng = np.random.default_rng(3)
    for r in (1.0, 100.0):
        ra, dec = _random_sky(rng, 20_000)
        dec[:5000] = np.sign(dec[:5000]) * rng.uniform(89.5, 90, 5000)
        o = match_order(r)
        cells = cn.neighbours((healpix29(ra, dec) >> (2 * (29 - o))).astype(np.uint64), o).astype(np.int64)
        ra2, dec2 = _offset(rng, ra, dec, r)
        q = healpix29(ra2, dec2) >> (2 * (29 - o))
        assert (cells == q[:, None]).any(axis=1).all()


def test_kernels_match_numpy_twins():
    rng = np.random.default_rng(7)
    ne, nl = 300, 2000
    ex, ey, ez = K.radec_to_xyz(*_random_sky(rng, ne))
    lx, ly, lz = K.radec_to_xyz(*_random_sky(rng, nl))
    lo = rng.integers(0, nl, (ne, 9))
    hi = np.minimum(lo + rng.integers(0, 60, (ne, 9)), nl)
    chord2 = K.arcsec_to_chord2(10 * 3600.0)
    counts = K.count_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
    i, j, d = K.all_pairs(ex, ey, ez, lx, ly, lz, lo, hi, chord2, counts)
    i2, j2, d2 = K.all_pairs_np(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
    assert i.size > 100
    assert np.array_equal(i, i2) and np.array_equal(j, j2) and np.allclose(d, d2)
    b, bd = K.nearest(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
    b2, bd2 = K.nearest_np(ex, ey, ez, lx, ly, lz, lo, hi, chord2)
    assert np.array_equal(b, b2) and np.allclose(bd[b >= 0], bd2[b2 >= 0])
    assert np.allclose(K.chord2_to_arcsec(K.arcsec_to_chord2(1.5)), 1.5)
    # cell ranges (galloping search) agree with numpy's searchsorted, sorted or not, with -1 cells
    for trial in range(50):
        cellk = np.sort(rng.integers(0, 100, rng.integers(0, 400)))
        cells = rng.integers(-1, 110, (rng.integers(0, 60), 9))
        if trial % 2:
            cells = cells[np.argsort(cells[:, 4])]
        a, b = K.cell_ranges(cellk, cells), K.cell_ranges_np(cellk, cells)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("radius", RADII)
def test_all_pairs_identical_to_astropy(sky, radius):
    root, lake, ext = sky
    res = xmatch(ext, root, "dr9", radius_arcsec=radius, mode="all", ra_col="RA_DEG", dec_col="DEC_DEG",
                 columns=["brickid", "ra", "dec", "flux_r"])
    e, L = _coords(ext, "RA_DEG", "DEC_DEG"), _coords(lake, "ra", "dec")
    i1, i2, sep, _ = search_around_sky(e, L, radius * u.arcsec)
    ref = np.sort(i1.astype(np.int64) * N_LAKE + i2)
    got = np.sort(res.column("ext_id").to_numpy() * N_LAKE + res.column("brickid").to_numpy())
    assert np.array_equal(got, ref)  # identical pairs, none twice
    assert ref.size > 20_000
    # separations agree with astropy to 1e-6 arcsec
    order = np.lexsort((i2, i1))
    srt = np.argsort(res.column("ext_id").to_numpy() * N_LAKE + res.column("brickid").to_numpy())
    assert np.allclose(res.column("sep_arcsec").to_numpy()[srt], sep.arcsec[order], atol=1e-6, rtol=0)
    # many of these pairs straddle lake partitions, at RA=0/360 and around the poles
    lk = Lake.open(root, "dr9")
    part_ext = np.searchsorted(lk.lo29, healpix29(ext.column("RA_DEG").to_numpy(),
                                                  ext.column("DEC_DEG").to_numpy()), side="right") - 1
    part_lake = np.searchsorted(lk.lo29, healpix29(lake.column("ra").to_numpy(),
                                                   lake.column("dec").to_numpy()), side="right") - 1
    cross = part_ext[i1] != part_lake[i2]
    assert cross.sum() > (100 if radius < 10 else 2_000)
    wrap = np.abs(ext.column("RA_DEG").to_numpy()[i1] - lake.column("ra").to_numpy()[i2]) > 180
    assert wrap.sum() > (5 if radius < 10 else 100)
    assert (np.abs(lake.column("dec").to_numpy()[i2]) > 89.95).sum() > 10


@pytest.mark.parametrize("radius", RADII)
def test_nearest_identical_to_astropy(sky, radius):
    root, lake, ext = sky
    res = xmatch(ext, root, "dr9", radius_arcsec=radius, mode="nearest", ra_col="RA_DEG",
                 dec_col="DEC_DEG", keep_unmatched=True)
    assert res.num_rows == ext.num_rows
    # the lake's own names: no collision with RA_DEG/DEC_DEG, so nothing is renamed
    assert res.column_names == list(ext.column_names) + ["release", "brickid", "objid", "ra", "dec", "sep_arcsec"]
    e, L = _coords(ext, "RA_DEG", "DEC_DEG"), _coords(lake, "ra", "dec")
    j, sep, _ = e.match_to_catalog_sky(L)
    ok = sep.arcsec <= radius
    res = res.sort_by("ext_id")
    got = res.column("brickid").to_numpy(zero_copy_only=False)
    got = np.where(np.isnan(got.astype(float)), -1, got).astype(np.int64)
    assert np.array_equal(got, np.where(ok, j, -1))
    s = res.column("sep_arcsec").to_numpy(zero_copy_only=False)
    assert np.allclose(s[ok], sep.arcsec[ok], atol=1e-6, rtol=0)
    assert np.isnan(s[~ok]).all()
    assert 10_000 < ok.sum() < ext.num_rows
    # without keep_unmatched only matched rows come back
    res2 = xmatch(ext.to_pandas(), root, "dr9", radius_arcsec=radius, ra_col="RA_DEG", dec_col="DEC_DEG")
    assert res2.num_rows == ok.sum()


def test_nonfinite_rows_counted_and_skipped(sky, tmp_path):
    from legacylake.query.crossmatch import XmatchStats

    root, lake, ext = sky
    sub = ext.slice(0, 2000)
    ra = sub.column("RA_DEG").to_numpy().copy()
    ra[:7] = np.nan
    ra[7:9] = np.inf
    dec = sub.column("DEC_DEG").to_numpy().copy()
    dec[9] = 95.0
    sub = sub.set_column(0, "RA_DEG", pa.array(ra)).set_column(1, "DEC_DEG", pa.array(dec))
    st = XmatchStats()
    out = tmp_path / "m.parquet"
    xmatch(sub, root, "dr9", radius_arcsec=1.0, ra_col="RA_DEG", dec_col="DEC_DEG", out=out, stats=st)
    assert st.skipped_nonfinite == 10
    assert st.external_rows == 1990
    assert "10 rows with non-finite" in st.summary()
    import pyarrow.parquet as pq

    t = pq.read_table(out)
    assert t.num_rows == st.output_rows and not np.isin(np.arange(10), t.column("ext_id").to_numpy()).any()


def test_bad_arguments(sky):
    root, lake, ext = sky
    with pytest.raises(UserError, match="positive"):
        xmatch(ext, root, "dr9", radius_arcsec=0, ra_col="RA_DEG", dec_col="DEC_DEG")
    with pytest.raises(UserError, match="above 1 degree"):
        xmatch(ext, root, "dr9", radius_arcsec=3601, ra_col="RA_DEG", dec_col="DEC_DEG")
    with pytest.raises(UserError, match="no RA column 'nope'"):
        xmatch(ext, root, "dr9", radius_arcsec=1, ra_col="nope", dec_col="DEC_DEG")
    bad = ext.append_column("sra", pa.array(["x"] * ext.num_rows))
    with pytest.raises(UserError, match="'sra' is string, not numeric"):
        xmatch(bad, root, "dr9", radius_arcsec=1, ra_col="sra", dec_col="DEC_DEG")
    with pytest.raises(UserError, match="not a HATS catalog"):
        xmatch(ext, root, "nothere", radius_arcsec=1, ra_col="RA_DEG", dec_col="DEC_DEG")
    with pytest.raises(UserError, match="no column 'nope'"):
        xmatch(ext, root, "dr9", radius_arcsec=1, ra_col="RA_DEG", dec_col="DEC_DEG", columns=["nope"])


def test_proper_motion_propagation(sky):
    root, lake, ext = sky
    rng = np.random.default_rng(5)
    # the propagation agrees with astropy's apply_space_motion (also next to the poles)
    from astropy.time import Time

    n = 2000
    ra, dec = _random_sky(rng, n)
    dec[: n // 2] = rng.uniform(89.99, 90, n // 2)
    pmra, pmdec = rng.normal(0, 500, n), rng.normal(0, 500, n)
    c = SkyCoord(ra * u.deg, dec * u.deg, pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                 obstime=Time(2000.0, format="jyear"))
    with np.errstate(all="ignore"), pytest.warns(Warning):
        c2 = c.apply_space_motion(new_obstime=Time(2016.0, format="jyear"))
    r2, d2 = propagate(ra, dec, pmra, pmdec, 16.0)
    assert SkyCoord(r2 * u.deg, d2 * u.deg).separation(c2).arcsec.max() < 1e-4
    # external stars at epoch 2000 whose 2016 positions are lake rows (up to ~10 arcsec of motion)
    dec_l = lake.column("dec").to_numpy()
    idx = rng.choice(np.flatnonzero(np.abs(dec_l) < 85), 3000, replace=False)
    ra0 = lake.column("ra").to_numpy()[idx]
    dec0 = dec_l[idx]
    pmra = rng.normal(0, 300, idx.size)
    pmdec = rng.normal(0, 300, idx.size)
    ra1, dec1 = propagate(ra0, dec0, pmra, pmdec, -16.0)  # back to 2000
    t = pa.table({"ra": ra1, "dec": dec1, "pmra": pmra, "pmdec": pmdec,
                  "ref_epoch": np.full(idx.size, 2000.0), "want": lake.column("brickid").to_numpy()[idx]})
    plain = xmatch(t, root, "dr9", radius_arcsec=0.05)
    moved = xmatch(t, root, "dr9", radius_arcsec=0.05, epoch_from="ref_epoch", pm_cols=["pmra", "pmdec"],
                   epoch_to=2016.0)
    assert plain.num_rows < 100
    assert moved.num_rows == idx.size
    assert np.array_equal(moved.column("want").to_numpy(), moved.column("brickid").to_numpy())
    with pytest.raises(UserError, match="records no epoch"):
        xmatch(t, root, "dr9", radius_arcsec=1, epoch_from="ref_epoch", pm_cols=["pmra", "pmdec"])


def test_output_names_suffix_only_collisions(sky):
    """Lake columns keep their names; only a name the external table has too gets ``_lake``."""
    root, lake, ext = sky
    e = ext.rename_columns(["ra" if n == "RA_DEG" else "dec" if n == "DEC_DEG" else n for n in ext.column_names])
    e = e.append_column("objid", pa.array(np.arange(e.num_rows, dtype=np.int64)))
    res = xmatch(e, root, "dr9", radius_arcsec=1.0, mode="nearest", keep_unmatched=True)
    assert res.column_names == list(e.column_names) + ["release", "brickid", "objid_lake", "ra_lake", "dec_lake",
                                                       "sep_arcsec"]
    assert np.array_equal(res.sort_by("objid")["objid"].to_numpy(), np.arange(e.num_rows))
    hit = res.filter(pc.is_valid(res["sep_arcsec"]))
    assert hit.num_rows > 0
    d = SkyCoord(hit["ra"].to_numpy() * u.deg, hit["dec"].to_numpy() * u.deg).separation(
        SkyCoord(hit["ra_lake"].to_numpy() * u.deg, hit["dec_lake"].to_numpy() * u.deg)).arcsec
    np.testing.assert_allclose(d, hit["sep_arcsec"].to_numpy(), atol=1e-6)
