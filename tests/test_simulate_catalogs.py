"""legacylake simulate: truth sky, per-brick catalogs (DR9/DR4), files, external catalogs."""

import filecmp

import fitsio
import numpy as np
import pyarrow.parquet as pq
import pytest

from legacylake.catalogs_schema import FITBITS, MASKBITS, bricks, detect, table_header, validate
from legacylake.catalogs_schema import model
from legacylake.catalogs_schema.constants import EXTINCTION_R, GAIA_BPRP_RANGE, GAIA_TO_DECAM
from legacylake.main import main
from legacylake.photometry.sim import catalog as sim
from legacylake.photometry.model.selection import select_type

# a 3 x 3 block of bricks at high Galactic latitude; the centre brick is 1503p022
BOX = (150.0, 150.7, 2.0, 2.5)
CENTRE = "1503p022"
LOW = 30_000.0  # low truth density for the geometric tests (faster)


@pytest.fixture(scope="module")
def block():
    names = sim.bricks_for_box(150.2, 150.55, 2.1, 2.4)
    assert CENTRE in names and len(names) == 9
    return {n: sim.simulate_brick(n, "dr9", seed=5, density=LOW, return_uid=True) for n in names}


@pytest.fixture(scope="module")
def full_brick():
    return sim.simulate_brick(CENTRE, "dr9", seed=1)


def test_truth_same_whatever_region():
    big = sim.truth_sky(150.0, 150.6, 2.0, 2.4, seed=3)
    small = sim.truth_sky(150.21, 150.33, 2.13, 2.26, seed=3)
    assert len(small) > 100
    idx = {u: i for i, u in enumerate(big["uid"])}
    assert all(u in idx for u in small["uid"])
    j = np.array([idx[u] for u in small["uid"]])
    assert np.array_equal(big[j], small)
    assert set(np.unique(big["kind"])) == {0, 1, 2}
    other = sim.truth_sky(150.21, 150.33, 2.13, 2.26, seed=4)
    assert not np.array_equal(other["ra"][:10], small["ra"][:10])


def test_star_counts_rise_towards_plane():
    hi = sim.truth_sky(180.0, 180.5, 30.0, 30.5, seed=0)    # b ~ +80
    lo = sim.truth_sky(100.0, 100.5, 10.0, 10.5, seed=0)    # b ~ +7
    assert (lo["kind"] == 0).sum() > 4 * (hi["kind"] == 0).sum()


def test_columns_types_and_schema(full_brick):
    a = full_brick
    assert a.dtype == sim.catalog_dtype("dr9")
    assert validate(a, "dr9-tractor").ok
    assert np.array_equal(a["objid"], np.arange(len(a)))
    assert np.all(np.diff(a["ra"]) >= 0)
    b = bricks.brick(CENTRE)
    assert np.all(a["brickid"] == b["brickid"]) and np.all(a["brickname"] == CENTRE)
    assert np.all(a["brick_primary"] == bricks.is_primary(a["ra"], a["dec"], b["brickid"]))
    assert np.all((np.round(a["bx"]) >= 0) & (np.round(a["bx"]) <= 3599))
    # bx/by agree with the brick WCS (0-based)
    x, y = bricks.brick_wcs(CENTRE).all_world2pix(a["ra"][:50], a["dec"][:50], 0)
    assert np.allclose(x, a["bx"][:50], atol=0.02) and np.allclose(y, a["by"][:50], atol=0.02)
    assert set(np.unique(a["release"])) == {9010}
    nonpsf_mw = a["mw_transmission_g"] < a["mw_transmission_z"]
    assert nonpsf_mw.all()


def test_counts_and_type_fractions(full_brick):
    a = full_brick
    assert 3000 <= len(a) <= 5000
    types, counts = np.unique(a["type"], return_counts=True)
    frac = dict(zip(types, counts / len(a)))
    assert set(types) <= {"PSF", "REX", "EXP", "DEV", "SER"}
    assert 0.3 < frac["PSF"] < 0.65
    assert 0.15 < frac["REX"] < 0.5
    assert 0.08 < frac.get("EXP", 0) + frac.get("DEV", 0) + frac.get("SER", 0) < 0.4
    g2 = a["ref_cat"] == "G2"
    assert 10 < g2.sum() < 400
    assert np.all(a["ref_id"][g2] > 0) and np.all(a["ref_epoch"][g2] == np.float32(2015.5))
    assert np.all(a["pmra_ivar"][~g2] == 0)


def test_dchisq_rules_give_type(full_brick):
    a = full_brick
    ref = a["ref_cat"] == "G2"
    again = select_type(a["dchisq"], "dr9")
    assert np.array_equal(again[~ref], a["type"][~ref])
    # reference stars are kept even below threshold, as PSF
    assert np.all((again[ref] == a["type"][ref]) | ((again[ref] == "") & (a["type"][ref] == "PSF")))
    # forced point sources only have the PSF entry
    forced = (a["fitbits"] & 1) != 0
    assert np.all(a["dchisq"][forced, 1:] == 0)


def test_measured_quantities_plausible(full_brick):
    a = full_brick
    psf = a["type"] == "PSF"
    assert np.all(a["shape_r"][psf] == 0) and np.all(a["sersic"][psf] == 0)
    assert np.all(a["sersic"][a["type"] == "DEV"] == 4) and np.all(a["sersic"][a["type"] == "EXP"] == 1)
    assert np.all(a["shape_e1"][a["type"] == "REX"] == 0)
    ser = a["type"] == "SER"
    assert np.all((a["sersic"][ser] >= 0.5) & (a["sersic"][ser] <= 6))
    # S/N of kept non-reference sources is at least ~5
    snr2 = sum(np.where(a[f"flux_{b}"] > 0, a[f"flux_{b}"] ** 2 * a[f"flux_ivar_{b}"], 0) for b in "grz")
    assert np.percentile(snr2[a["ref_cat"] != "G2"], 1) > 15
    # galaxies get larger flux errors than point sources at the same depth
    gal = np.isin(a["type"], ["EXP", "DEV", "SER"])
    r_psf = np.median(a["flux_ivar_r"][psf] / a["psfdepth_r"][psf])
    r_gal = np.median(a["flux_ivar_r"][gal] / a["psfdepth_r"][gal])
    assert r_gal < 0.8 < r_psf
    assert np.all(a["flux_ivar_r"] <= a["psfdepth_r"] * (1 + 1e-5))
    # apertures grow, fibre flux below total for positive sources
    bright = a["flux_r"] > 50
    assert np.all(np.diff(a["apflux_r"][bright], axis=1).mean(axis=0) > 0)
    assert np.all(a["fiberflux_r"][bright] < a["flux_r"][bright])
    assert np.all(a["fibertotflux_r"] >= a["fiberflux_r"] - 1e-6)
    assert np.all(a["mw_transmission_g"] == np.float32(10 ** (-0.4 * 3.214 * a["ebv"]))) or \
        np.allclose(a["mw_transmission_g"], 10 ** (-0.4 * 3.214 * a["ebv"].astype(float)), rtol=1e-6)
    # light curves: used epochs first, the rest -1
    ei = a["lc_epoch_index_w1"]
    assert np.all(ei[:, 0] == 0) and np.all((ei == -1) == (a["lc_flux_ivar_w1"] == 0))
    # maskbits: NPRIMARY exactly on non-primary rows, MEDIUM around the bright stars
    np_bit = (a["maskbits"] & MASKBITS.value("NPRIMARY")) != 0
    assert np.array_equal(np_bit, ~a["brick_primary"])
    assert 0 <= ((a["maskbits"] & MASKBITS.value("CLUSTER")) != 0).mean() < 0.2


def test_maskbit_frequencies_over_sky():
    # bright-star masks over a few bricks: present but rare
    rows = np.concatenate([sim.simulate_brick(n, seed=2, density=LOW) for n in sim.random_bricks(6, seed=2)])
    med = ((rows["maskbits"] & MASKBITS.value("MEDIUM")) != 0).mean()
    brt = ((rows["maskbits"] & MASKBITS.value("BRIGHT")) != 0).mean()
    assert 0.0005 < med < 0.3 and brt <= med
    ref_bright = (rows["fitbits"] & (1 << 5)) != 0
    assert np.all((rows["maskbits"][ref_bright] & MASKBITS.value("BRIGHT")) != 0)


def test_duplicates_and_primary_exactly_once(block):
    cat = {n: a for n, (a, _) in block.items()}
    uid = {n: u for n, (_, u) in block.items()}
    allu = np.concatenate(list(uid.values()))
    prim = np.concatenate([cat[n]["brick_primary"] for n in block])
    # no source is primary twice
    pu, pc = np.unique(allu[prim], return_counts=True)
    assert pc.max() == 1
    # every source of the centre brick is primary in exactly one of the 9 bricks
    assert np.all(np.isin(uid[CENTRE], pu))
    # duplicates are exactly the overlapping sources: a source of any neighbour whose
    # catalog position falls in the centre brick's image is in the centre brick, and vice versa
    wcs = bricks.brick_wcs(CENTRE)
    for n in block:
        if n == CENTRE:
            continue
        a, u = cat[n], uid[n]
        x, y = wcs.all_world2pix(a["ra"], a["dec"], 0)
        inside = (np.round(x) >= 0) & (np.round(x) <= 3599) & (np.round(y) >= 0) & (np.round(y) <= 3599)
        assert np.array_equal(np.isin(u, uid[CENTRE]), inside)
        common, i1, i2 = np.intersect1d(u, uid[CENTRE], return_indices=True)
        assert len(common) > 0
        for c in ("ra", "dec", "flux_r", "dchisq", "type", "shape_r"):
            assert np.array_equal(a[c][i1], cat[CENTRE][c][i2])


def test_write_read_back_deterministic(tmp_path):
    names = ["1503p022", "1506p022"]
    out1 = sim.write_bricks(tmp_path / "a", names, "dr9", seed=7, density=LOW)
    out2 = sim.write_bricks(tmp_path / "b", names, "dr9", seed=7, density=LOW, workers=2)
    out3 = sim.write_bricks(tmp_path / "c", names[:1], "dr9", seed=8, density=LOW)
    for (p1, n1), (p2, _) in zip(out1, out2):
        assert p1.endswith(f"tractor/150/tractor-{p1[-13:-5]}.fits")
        assert filecmp.cmp(p1, p2, shallow=False)
        arr = fitsio.read(p1)
        assert len(arr) == n1 and "FLUX_G" in arr.dtype.names and "flux_g" not in arr.dtype.names
        hdr, _ = table_header(p1)
        assert detect(hdr).model == "dr9-tractor" and validate(hdr, "dr9-tractor").ok
        ref = sim.simulate_brick(p1[-13:-5], "dr9", seed=7, density=LOW)
        assert np.array_equal(arr["OBJID"], ref["objid"])
        assert np.array_equal(arr["FLUX_R"], ref["flux_r"])
        assert np.array_equal(arr["TYPE"], ref["type"]) and np.array_equal(arr["BRICK_PRIMARY"], ref["brick_primary"])
        assert np.array_equal(arr["LC_FLUX_W1"], ref["lc_flux_w1"])
    assert not filecmp.cmp(out1[0][0], out3[0][0], shallow=False)


@pytest.mark.parametrize("rel", ["dr9", "dr4"])
def test_records_same_in_any_blocks(rel):
    """The writer's block-by-block records are the same bytes as the whole array at once."""
    from legacylake.photometry.sim.measure import measure_brick

    recs = measure_brick(CENTRE, rel, seed=2, density=LOW)
    whole = recs.records().tobytes()
    assert recs.n > 100 and len(whole) == recs.n * recs.dtype.itemsize
    for rows in (1, 37, 10_000):
        assert b"".join(bytes(b) for b in recs.blocks(rows)) == whole, rows


def test_dr4_model(tmp_path):
    (path, n), = sim.write_bricks(tmp_path, [CENTRE], "dr4", seed=1, density=LOW)
    hdr, _ = table_header(path)
    assert detect(hdr).model == "dr4-tractor" and validate(hdr, "dr4-tractor").ok
    a = fitsio.read(path)
    assert set(np.char.strip(np.unique(a["TYPE"]))) <= {"PSF", "SIMP", "DEV", "EXP", "COMP"}
    assert np.all(a["RELEASE"] == 4000) and a["LC_FLUX_W1"].shape[1] == 7
    again = select_type(a["DCHISQ"], "dr4")
    assert np.array_equal(np.char.strip(again), np.char.strip(a["TYPE"]))
    dev = np.char.strip(a["TYPE"]) == "DEV"
    assert np.all(a["FRACDEV"][dev] == 1) and np.all(a["SHAPEEXP_R"][dev] == 0)
    # every column of the DR4 model, the unobserved u, i, Y bands with the no-data convention
    dm = model("dr4-tractor")
    assert list(a.dtype.names) == [c.name.upper() for c in dm.columns]
    optional = [c.name.upper() for c in dm.columns if not c.required]
    assert {c.rsplit("_", 1)[1] for c in optional} == {"U", "I", "Y"}
    for c in optional:
        if c.startswith("MW_TRANSMISSION"):
            band = c.rsplit("_", 1)[1].lower()
            assert np.allclose(a[c], 10 ** (-0.4 * EXTINCTION_R[band] * a["EBV"]), rtol=1e-6), c
            continue
        assert not np.any(a[c]), c


def test_external_catalogs_match_truth(tmp_path):
    box = (150.25, 150.45, 2.13, 2.37)
    ng = sim.write_external(tmp_path / "gaia.parquet", "gaia", box, seed=1)
    ns = sim.write_external(tmp_path / "sdss.parquet", "sdss", box, seed=1)
    g = pq.read_table(tmp_path / "gaia.parquet").to_pandas()
    s = pq.read_table(tmp_path / "sdss.parquet").to_pandas()
    assert ng == len(g) > 10 and ns == len(s) > 0
    assert np.all(g["ref_epoch"] == 2016.0) and g["source_id"].is_unique and s["specobjid"].is_unique
    assert set(s["class"]) <= {"GALAXY", "QSO", "STAR"}
    # the Tractor G2 stars of the centre brick are the Gaia sources with the same id
    a = sim.simulate_brick(CENTRE, seed=1)
    g2 = a[(a["ref_cat"] == "G2") & (a["ra"] > 150.26) & (a["ra"] < 150.44) & (a["dec"] > 2.14) & (a["dec"] < 2.36)]
    assert len(g2) > 5
    m = g.set_index("source_id").loc[g2["ref_id"]]
    sep = np.hypot((m["ra"].to_numpy() - g2["ra"]) * np.cos(np.deg2rad(g2["dec"])), m["dec"].to_numpy() - g2["dec"]) * 3600
    assert np.all(sep < 0.5)  # same star, 0.5 yr of proper motion apart
    t = sim.truth_sky(*box, seed=1)
    zt = dict(zip(t["uid"], t["redshift"]))
    gal = s[s["class"] != "STAR"]
    assert np.allclose(gal["z"], [zt[u] for u in gal["truth_uid"]], atol=0.01)


def _gaia_pred_pull(gmag, bp, rp, foe_g, foe_bp, foe_rp, flux, ivar, band):
    """(mag difference, pull) of the reference's Gaia-to-DECam prediction against Tractor fluxes."""
    P = np.polynomial.polynomial.polyval
    x = np.clip(bp - rp, *GAIA_BPRP_RANGE)
    c = GAIA_TO_DECAM[band]
    pred = gmag + P(x, c)
    d = pred - (22.5 - 2.5 * np.log10(np.maximum(flux, 1e-9)))
    slope = P(x, np.polynomial.polynomial.polyder(c))
    sig = np.sqrt((1.0857 / foe_g) ** 2 + slope**2 * ((1.0857 / foe_bp) ** 2 + (1.0857 / foe_rp) ** 2)
                  + 1.0857**2 / (flux**2 * ivar))
    return d, d / sig


def test_gaia_mags_predict_star_fluxes(full_brick, tmp_path):
    """Gaia magnitudes are observed (reddened like the fluxes): the reference's colour
    polynomials applied to them predict the Tractor g, r, z of the stars within the noise,
    in the tractor gaia_* columns and in `simulate external --kind gaia`."""
    a = full_brick
    s = (a["ref_cat"] == "G2") & (a["type"] == "PSF") & (a["gaia_phot_g_mean_mag"] > 14) & (a["gaia_phot_g_mean_mag"] < 19.5)
    a = a[s]
    assert len(a) > 20 and np.median(a["ebv"]) > 0.015  # reddening matters: A_r ~ 0.05 mag here
    assert np.allclose(a["gaia_a_g_val"], 2.74 * a["ebv"], rtol=1e-3)
    args = [a[f"gaia_phot_{q}_mean_mag"].astype(float) for q in ("g", "bp", "rp")]
    args += [a[f"gaia_phot_{q}_mean_flux_over_error"].astype(float) for q in ("g", "bp", "rp")]
    for band in "grz":
        d, pull = _gaia_pred_pull(*args, a[f"flux_{band}"].astype(float), a[f"flux_ivar_{band}"].astype(float), band)
        assert abs(np.median(d)) < 0.005, band
        # (the few quasars in Gaia do not follow the stellar polynomials)
        assert np.mean(np.abs(pull) < 3) > 0.9 and np.median(np.abs(pull)) < 1.0, band
    ra, dec = a["ra"], a["dec"]
    box = (ra.min() - 1e-3, ra.max() + 1e-3, dec.min() - 1e-3, dec.max() + 1e-3)
    sim.write_external(tmp_path / "g.parquet", "gaia", box, seed=1)
    g = pq.read_table(tmp_path / "g.parquet").to_pandas().set_index("source_id").loc[a["ref_id"]]
    eargs = [g[f"phot_{q}_mean_mag"].to_numpy() for q in ("g", "bp", "rp")]
    eargs += [args[3], args[4], args[5]]  # the external catalogue's errors are smaller: use the tractor's
    d, pull = _gaia_pred_pull(*eargs, a["flux_r"].astype(float), a["flux_ivar_r"].astype(float), "r")
    assert abs(np.median(d)) < 0.005 and np.mean(np.abs(pull) < 3) > 0.9


def test_tycho2_reference_stars(tmp_path):
    """Bright Tycho-2 stars without a Gaia match are T2 rows: Tycho id and epoch, forced PSF,
    BRIGHT (maskbit and fitbit), MEDIUM, TYCHO2, no Gaia columns, absent from the Gaia catalog."""
    from legacylake.photometry.sim.refstars import TYCHO_EPOCH, TYCHO_G_MAX, tycho_only

    t = sim.truth_sky(154.0, 154.5, 2.0, 2.5, seed=0)
    star = t[np.flatnonzero(tycho_only(t, 0))[0]]
    assert star["gaia_g"] < TYCHO_G_MAX
    name = str(bricks.brickname_of(star["ra"], star["dec"]))
    a, uid = sim.simulate_brick(name, "dr9", seed=0, return_uid=True)
    row = a[uid == star["uid"]]
    assert len(row) == 1
    row = row[0]
    assert row["ref_cat"] == "T2" and row["type"] == "PSF" and row["ref_epoch"] == np.float32(TYCHO_EPOCH)
    tyc1, tyc2, tyc3 = row["ref_id"] // 1_000_000, row["ref_id"] // 10 % 100_000, row["ref_id"] % 10
    assert 1 <= tyc1 <= 9537 and 1 <= tyc2 <= 12000 and tyc3 == 1
    assert set(FITBITS.decode(int(row["fitbits"]))) >= {"TYCHO2", "BRIGHT", "MEDIUM", "FORCED_POINTSOURCE"}
    assert "GAIA" not in FITBITS.decode(int(row["fitbits"]))
    assert row["maskbits"] & MASKBITS.value("BRIGHT") and row["parallax_ivar"] == 0 and row["pmra_ivar"] > 0
    assert row["gaia_phot_g_mean_mag"] == 0 and row["flux_ivar_r"] > 0
    sep = np.hypot((row["ra"] - star["ra"]) * np.cos(np.deg2rad(star["dec"])), row["dec"] - star["dec"]) * 3.6e6
    assert sep < 2000  # mas: 24 yr of proper motion and Tycho errors
    assert np.sum(a["ref_cat"] == "T2") < np.sum(a["ref_cat"] == "G2")
    box = (star["ra"] - 0.01, star["ra"] + 0.01, star["dec"] - 0.01, star["dec"] + 0.01)
    sim.write_external(tmp_path / "g.parquet", "gaia", box, seed=0)
    g = pq.read_table(tmp_path / "g.parquet").to_pandas()
    assert star["uid"] not in set(g["truth_uid"]) and len(g) > 0


def test_cli(tmp_path, capsys):
    assert main(["simulate", "catalogs", "--out", str(tmp_path), "--bricks", "1503p022",
                 "--density", str(LOW)]) == 0
    assert "1 bricks" in capsys.readouterr().out
    assert (tmp_path / "tractor" / "150" / "tractor-1503p022.fits").exists()
    assert main(["simulate", "catalogs", "--out", str(tmp_path), "--bricks", "9999x999"]) == 2
    assert "9999x999" in capsys.readouterr().err
    assert main(["simulate", "external", "--kind", "gaia", "--out", str(tmp_path / "g.parquet"),
                 "--box", "150.2", "150.3", "2.1", "2.2"]) == 0
    assert main(["simulate", "catalogs", "--out", str(tmp_path), "--box", "150", "150.1", "3", "2"]) == 2


# columns a duplicate row may change from brick to brick: the brick's own identifiers and
# pixels, and what depends on the neighbours seen in the brick's image (blending)
BRICK_SPECIFIC = {"brickid", "brickname", "objid", "bx", "by", "brick_primary", "maskbits"}
BLENDING = ("blob_nea_", "fibertotflux_", "fracflux_", "lc_fracflux_", "rchisq_")


def test_duplicates_identical_except_brick_specific(block):
    a, ua = block[CENTRE]
    seen = set()
    for name, (b, ub) in block.items():
        if name == CENTRE:
            continue
        _, ia, ib = np.intersect1d(ua, ub, return_indices=True)
        if len(ia) == 0:
            continue
        seen.add(name)
        for c in a.dtype.names:
            if c in BRICK_SPECIFIC or c.startswith(BLENDING):
                continue
            assert np.array_equal(a[c][ia], b[c][ib]), (name, c)
        # maskbits differ at most by NPRIMARY
        npri = MASKBITS.value("NPRIMARY")
        assert np.array_equal(a["maskbits"][ia] & ~npri, b["maskbits"][ib] & ~npri)
    assert len(seen) == 8
