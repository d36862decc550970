"""Readers of the survey's file layouts (CCD tables, PsfEx, sky, images) and the run-brick
targets, on the real test folders of ../shared/data."""

import os
import shutil

import fitsio
import numpy as np
import pytest

from legacylake.errors import UserError


def _ccd(d, **match):
    from legacylake.photometry.brick.ccds import read_ccds
    t = read_ccds(d)
    for k, v in match.items():
        t = t[np.char.strip(t[k].astype(str)) == v] if isinstance(v, str) else t[t[k] == v]
    assert len(t) == 1
    return t[0]


# ---------------------------------------------------------------- PsfEx
def test_psfex_header_keyword_layout(shared_data):
    """The older per-CCD PsfEx files hold the polynomial terms as header keywords (issue 18:
    KeyError 'poldeg1'); the model read from them equals the same model written as columns."""
    from legacylake.photometry.model.psf import PsfEx
    from legacylake.photometry.brick.calib import read_psfex
    d = str(shared_data / "legacypipe-mzlsbass3")
    ccd = _ccd(d, expnum=5742149339)
    p, path = read_psfex(d, ccd)
    assert path.endswith("calib/90prime/psfex/57421/5742149339/decam-5742149339-ccd2.fits")
    h = fitsio.read_header(path, ext=1)
    assert "POLDEG1" in h and "poldeg1" not in [c.lower() for c in fitsio.read(path).dtype.names]
    assert p.deg == h["POLDEG1"] == 2 and p.samp == pytest.approx(h["PSF_SAMP"])
    assert p.zero == (h["POLZERO1"], h["POLZERO2"])
    # the same model as table columns
    t = fitsio.read(path)
    cols = np.zeros(1, dtype=[("psf_mask", "f4", t["psf_mask"].shape[1:]), ("poldeg1", "i8"), ("polzero1", "f8"),
                              ("polzero2", "f8"), ("polscal1", "f8"), ("polscal2", "f8"), ("psf_samp", "f8")])
    cols["psf_mask"] = t["psf_mask"]
    for k in ("poldeg1", "polzero1", "polzero2", "polscal1", "polscal2", "psf_samp"):
        cols[k] = h[k.upper()]
    q = PsfEx.from_table(cols, "columns")
    np.testing.assert_array_equal(p.stamp_at(30.0, 20.0), q.stamp_at(30.0, 20.0))
    # sampled every 0.708 px: resampled onto native pixels, unit sum, centred
    s = p.stamp_at(30.0, 20.0)
    assert s.shape[0] % 2 == 1 and s.shape[0] < t["psf_mask"].shape[-1] and abs(s.sum() - 1) < 1e-12
    h2 = s.shape[0] // 2
    y, x = np.mgrid[-h2:h2 + 1, -h2:h2 + 1]
    assert abs(np.sum(s * x)) < 0.05 and abs(np.sum(s * y)) < 0.05


def test_resample_stamp_keeps_the_centre():
    """A Gaussian sampled every 0.7 native px, resampled: centred, sigma in native px, and the
    numpy reference (direct evaluation) agrees."""
    from legacylake.photometry.model.psf import resample_stamp, stamp_fwhm
    samp, sig = 0.7, 2.0                      # sigma in native pixels
    n = 31
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n]
    basis = np.exp(-0.5 * (((xx - c) * samp) ** 2 + ((yy - c) * samp) ** 2) / sig ** 2)
    out = resample_stamp(basis, samp)
    h = out.shape[0] // 2
    y, x = np.mgrid[-h:h + 1, -h:h + 1]
    ref = np.exp(-0.5 * (x ** 2 + y ** 2) / sig ** 2)
    assert out.shape == ref.shape == (21, 21)
    np.testing.assert_allclose(out / out.sum(), ref / ref.sum(), atol=2e-4)
    assert stamp_fwhm(out) == pytest.approx(2.3548 * sig, rel=0.01)


def test_psfex_merged_table_picks_the_ccd(shared_data, tmp_path):
    """Merged per-exposure PsfEx tables (testcase6): the row of the CCD; a CCD the folder has
    no model for is a one-line error naming the paths tried."""
    from legacylake.photometry.brick.calib import read_psfex
    d = str(shared_data / "legacypipe-testcase6")
    ccd = _ccd(d, expnum=396388)
    p, path = read_psfex(d, ccd)
    assert "/calib/psfex/" in path and path.endswith("c4d_150110_053718_ooi_z_ls9-psfex.fits")
    assert np.isfinite(p.fwhm_pix) and p.basis.shape == (6, 63, 63)
    other = ccd.copy()
    other["ccdname"] = "N1"
    with pytest.raises(UserError, match=r"N1: no PsfEx model \(tried calib/psfex/.*-psfex.fits, calib/psfex-single/"):
        read_psfex(d, other)


# ---------------------------------------------------------------- sky
def test_sky_layouts(shared_data):
    """Spline sky table (DECam), the Tractor's header ConstantSky (Mosaic3), and no sky file
    (90Prime: the image header's AVSKY)."""
    from legacylake.photometry.brick.calib import read_sky
    d3 = str(shared_data / "legacypipe-testcase3")
    s = read_sky(d3, _ccd(d3, expnum=349590))
    t = fitsio.read(s.path)
    assert s.kind == "spline" and s.gridvals.shape == (17, 9) and (s.x0, s.y0) == (t["x0"][0], t["y0"][0])
    v = s.evaluate((5, 4), 2, 3)
    assert v.shape == (5, 4) and np.all(np.abs(v - np.median(t["gridvals"])) < 50)
    dm = str(shared_data / "legacypipe-mzlsbass3")
    s = read_sky(dm, _ccd(dm, expnum=74931))
    assert s.kind == "constant" and s.value == pytest.approx(63.13747)
    c = _ccd(dm, expnum=5742149339)
    hdr = fitsio.read_header(os.path.join(dm, "images", c["image_filename"].strip()), ext=1)
    s = read_sky(dm, c, hdr)
    assert s.kind == "avsky" and s.value == pytest.approx(hdr["AVSKY"])


# ---------------------------------------------------------------- CCD tables and images
def test_ccd_tables_and_units(shared_data):
    """Every test folder's CCD table (gzipped FITS, k-d tree file); image units from the files:
    DECam images in counts, 90Prime and Mosaic3 in counts per second; pixel scales from the WCS."""
    from legacylake.photometry.brick.cp import load_cp_exposures
    from legacylake.photometry.brick.ccds import read_ccds
    assert len(read_ccds(str(shared_data / "legacypipe-testcase9"))) == 3        # survey-ccds-1.kd.fits
    exps = load_cp_exposures(str(shared_data / "legacypipe-mzlsbass3"))
    by_cam = {}
    for e in exps:
        by_cam.setdefault(e.camera, []).append(e)
    assert sorted(by_cam) == ["90prime", "mosaic"]
    for e in by_cam["90prime"]:
        assert e.per_second and 0.44 < e.image.pixscale < 0.46 and e.sky == "avsky"
    for e in by_cam["mosaic"]:
        assert e.per_second and 0.25 < e.image.pixscale < 0.27 and e.sky == "constant"
        assert 0.6 < e.fwhm < 1.2          # the old table's fwhm column is in arcsec for Mosaic3
    for e in exps:
        # nmgy: the weight map's noise is the table's sig1; the background is sky-subtracted
        assert 0.7 < np.median(1 / np.sqrt(e.image.ivar[e.image.ivar > 0])) / e.sig1 < 1.3
        assert abs(np.median(e.image.data[e.image.ivar > 0])) < 2 * e.sig1
        assert 0.5 < e.e_per_count < 5
    dec = load_cp_exposures(str(shared_data / "legacypipe-testcase3"))
    assert not any(e.per_second for e in dec) and all(0.26 < e.image.pixscale < 0.27 for e in dec)


def test_ccd_footprint_and_cut(shared_data):
    """Only CCDs touching the target are read, cut to the target's pixels; a target no CCD
    touches is a one-line error (the survey's 'nothing to do' brick corner)."""
    from legacylake.photometry.brick.cp import load_cp_exposures
    from legacylake.photometry.brick.target import brick_target
    d = str(shared_data / "legacypipe-testcase6")
    full = load_cp_exposures(d)
    part = load_cp_exposures(d, target=brick_target("1102p240", (500, 530, 700, 720)))
    assert len(part) == len(full) == 6
    for a, b in zip(full, part):
        assert b.image.shape[0] < a.image.shape[0] and b.image.shape[1] < a.image.shape[1]
        x0, y0 = b.cut
        h, w = b.image.shape
        np.testing.assert_array_equal(b.image.data, a.image.data[y0:y0 + h, x0:x0 + w])
        # the cut-out's WCS and PSF are those of the same pixels
        np.testing.assert_allclose(b.image.wcs.all_pix2world([[1.0, 2.0]], 0), a.image.wcs.all_pix2world([[x0 + 1.0, y0 + 2.0]], 0),
                                   rtol=0, atol=1e-10)
        np.testing.assert_allclose(b.image.psf.stamp_at(3.0, 4.0), a.image.psf.stamp_at(x0 + 3.0, y0 + 4.0), atol=1e-12)
    with pytest.raises(UserError, match=r"no CCDs touching 1102p240 box \(0, 100, 0, 100\)"):
        load_cp_exposures(d, target=brick_target("1102p240", (0, 100, 0, 100)))


def test_compressed_images(shared_data, tmp_path):
    """Tile-compressed CP images (.fits.fz), whatever name the CCD table gives, read the same."""
    from legacylake.photometry.brick.cp import load_cp_exposures
    src = shared_data / "legacypipe-testcase3"
    d = tmp_path / "tc3fz"
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("images"))
    for p in (src / "images").rglob("*.fits"):
        rel = p.relative_to(src)
        q = d / (str(rel) + ".fz")
        q.parent.mkdir(parents=True, exist_ok=True)
        with fitsio.FITS(str(p)) as f, fitsio.FITS(str(q), "rw", clobber=True) as g:
            g.write(None, header=f[0].read_header())
            g.write(f[1].read(), header=f[1].read_header(), extname=f[1].get_extname(), compress="GZIP",
                    qlevel=None)
    a = load_cp_exposures(str(src))
    b = load_cp_exposures(str(d))
    with fitsio.FITS(str(next((d / "images").rglob("*ooi*.fz")))) as f:
        assert f[1].is_compressed()
    assert len(a) == len(b) == 8
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image.data, y.image.data)
        np.testing.assert_array_equal(x.image.ivar, y.image.ivar)


def test_bad_survey_folders(shared_data, tmp_path):
    """Bad input: one-line errors naming the file and what is missing."""
    from legacylake.main import main
    src = shared_data / "legacypipe-testcase9"
    d = tmp_path / "tc9"
    shutil.copytree(src, d)
    ow = next((d / "images").rglob("*_oow_*N26.fits"))
    ow.unlink()
    with pytest.raises(UserError, match=rf"{ow.name}: missing \(oow of CCD table row"):
        from legacylake.photometry.brick.cp import load_cp_exposures
        load_cp_exposures(str(d))
    # a CCD table without the zero points
    t = fitsio.read(str(d / "survey-ccds-1.kd.fits"), ext=1)
    from numpy.lib import recfunctions as rfn
    fitsio.write(str(d / "survey-ccds-1.kd.fits"), rfn.drop_fields(t, ["ccdzpt"]), clobber=True)
    assert main(["photometry", "run-brick", "--radec", "9.1228", "3.3975", "--width", "100", "--height", "100",
                 "--images", str(d), "--out", str(tmp_path / "o")]) == 2
    assert main(["photometry", "run-brick", "--brick", "0091p035", "--zoom", "0", "4000", "0", "10",
                 "--images", str(src), "--out", str(tmp_path / "o")]) == 2
    assert main(["photometry", "run-brick", "--brick", "0091p035", "--width", "100",
                 "--images", str(src), "--out", str(tmp_path / "o")]) == 2


def test_ccd_table_missing_column_message(shared_data, tmp_path):
    from legacylake.photometry.brick.ccds import read_ccds
    t = fitsio.read(str(shared_data / "legacypipe-testcase3" / "survey-ccds-1.fits.gz"), ext=1)
    from numpy.lib import recfunctions as rfn
    fitsio.write(str(tmp_path / "survey-ccds-x.fits"), rfn.drop_fields(t, ["ccdzpt", "mjd_obs"]))
    with pytest.raises(UserError, match=r"survey-ccds-x.fits: CCD table lacks column\(s\) ccdzpt, mjd_obs"):
        read_ccds(str(tmp_path))


# ---------------------------------------------------------------- targets and references
def test_custom_and_zoomed_targets():
    from legacylake.catalogs_schema import bricks
    from legacylake.photometry.brick.target import brick_target, custom_target
    t = custom_target(9.1228, 3.3975, 100, 100)
    assert t.name == "custom-009122p03397" and t.brickid == -1 and t.box == (0, 100, 0, 100)
    # the centre pixel is the given position; the primary box spans the image
    assert np.allclose(t.wcs.all_pix2world([[49.5, 49.5]], 0)[0], [9.1228, 3.3975], atol=1e-9)
    assert t.is_primary(9.1228, 3.3975) and not t.is_primary(9.1228, 3.3975 + 60 * 0.262 / 3600)
    assert (t.dec2 - t.dec1) * 3600 == pytest.approx(99 * 0.262, rel=1e-4)
    z = brick_target("0091p035", (1950, 2050, 340, 440))
    assert z.box == (1950, 2050, 340, 440) and z.wcs.pixel_shape == (3600, 3600)
    assert z.brickid == bricks.brick("0091p035")["brickid"]
    with pytest.raises(UserError, match="--zoom 10 5 0 10"):
        brick_target("0091p035", (10, 5, 0, 10))


def test_gaia_chunks_and_masks(shared_data):
    """Gaia chunk files by HEALPix (nside 32 ring), and the mask geometry of stars and an SGA ellipse."""
    from legacylake.catalogs_schema import MASKBITS
    from legacylake.photometry.brick.references import _empty, gaia_chunks, mask_bits
    have = sorted(int(p.stem.split("-")[1]) for p in (shared_data / "legacypipe-testcase3" / "gaia").glob("chunk-*.fits"))
    got = gaia_chunks(244.7234, 12.0, 0.2)
    assert set(have) <= set(got.tolist()) and len(got) <= 9 and got.max() < 12 * 32 ** 2
    r = _empty(2)
    r["RA"], r["DEC"] = 10.0, 0.0
    r["ISBRIGHT"][0] = r["ISMEDIUM"][0] = True
    r["RADIUS"][0] = 20.0                               # star: BRIGHT within 10", MEDIUM within 20"
    r["ISLARGEGALAXY"][1] = True
    r["RADIUS"][1], r["BA"][1], r["PA"][1] = 30.0, 0.5, 90.0   # galaxy: major axis east-west, 30" x 15"
    east = np.array([0.0, 8.0, 12.0, 25.0, 0.0, 0.0]) / 3600
    north = np.array([0.0, 0.0, 0.0, 0.0, 12.0, 16.0]) / 3600
    mb = mask_bits(r, 10.0 + east, 0.0 + north)
    B, M, G = MASKBITS.mask("BRIGHT"), MASKBITS.mask("MEDIUM"), MASKBITS.mask("GALAXY")
    assert list(mb) == [B | M | G, B | M | G, M | G, G, M | G, M]
