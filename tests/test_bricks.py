import numpy as np
import pytest
from astropy.io import fits

from legacylake.catalogs_schema import bricks

FIXTURES = [
    # brickname, brickid, brickq, row, col, ra, dec, ra1, ra2, dec1, dec2 (reference section 1.2)
    ("3521p002", 333216, 2, 361, 1408, 352.125, 0.25, 352.0, 352.25, 0.125, 0.375),
    ("1773p595", 616029, 1, 598, 361, 177.30245, 59.5, 177.05722, 177.54768, 59.375, 59.625),
    ("2447p120", 400014, 0, 408, 958, 244.72340, 12.0, 244.59574, 244.85106, 11.875, 12.125),
    ("0091p035", 350562, 0, 374, 36, 9.13769, 3.5, 9.01252, 9.26287, 3.375, 3.625),
]


def test_grid_size_names_area():
    g = bricks.grid()
    assert len(g["brickid"]) == 662174 == bricks.nbricks()
    assert len(np.unique(g["brickname"])) == 662174
    assert np.array_equal(g["brickid"], np.arange(1, 662175))
    assert abs(bricks.area_deg2().sum() - 4 * np.pi * (180 / np.pi) ** 2) < 1e-6
    assert g["brickname"][0] == "1800m900" and g["brickname"][-1] == "1800p900"
    # rows near the equator have the maximum 1440 columns
    assert np.sum(g["brickrow"] == 360) == 1440


@pytest.mark.parametrize("row", FIXTURES)
def test_reference_examples(row):
    name, bid, q, r, c, ra, dec, ra1, ra2, dec1, dec2 = row
    b = bricks.brick(name)
    assert (b["brickid"], b["brickq"], b["brickrow"], b["brickcol"]) == (bid, q, r, c)
    for key, val in zip(["ra", "dec", "ra1", "ra2", "dec1", "dec2"], [ra, dec, ra1, ra2, dec1, dec2]):
        assert abs(b[key] - val) < 1e-5  # the table is printed to 5 decimals
    assert bricks.brickid_to_name(bid) == name and bricks.brickname_to_id(name) == bid


def test_real_survey_bricks_row_exact(shared_data):
    with fits.open(shared_data / "legacypipe-testcase3" / "survey-bricks.fits.gz") as h:
        real = h[1].data
    for r in real:
        b = bricks.brick(r["brickname"].strip())
        assert b["brickid"] == r["brickid"] and b["brickq"] == r["brickq"]
        assert b["brickrow"] == r["brickrow"] and b["brickcol"] == r["brickcol"]
        for key in ["ra", "dec", "ra1", "ra2", "dec1", "dec2"]:
            assert abs(b[key] - r[key]) < 1e-9, key


def test_lookup_is_primary_and_edges():
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, 200_000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 200_000)))
    ids = bricks.brickid_of(ra, dec)
    assert bricks.is_primary(ra, dec, ids).all()
    g = bricks.grid()
    # exact lower edges belong to the brick, upper edges to the next one
    i = rng.integers(0, 662174, 5000)
    assert np.array_equal(bricks.brickid_of(g["ra1"][i], np.maximum(g["dec1"][i], -90)), g["brickid"][i])
    assert bricks.brickid_of(360.0, 0.1) == bricks.brickid_of(0.0, 0.1)
    assert bricks.brickname_of(0.125, -0.5) == "0001m005"
    assert bricks.brickid_of(0, 90.0) == 662174 and bricks.brickid_of(0, -90.0) == 1
    with pytest.raises(ValueError):
        bricks.brickid_of(0.0, 91.0)


def test_brick_wcs_centre_and_size():
    w = bricks.brick_wcs("2447p120")
    x, y = w.world_to_pixel_values(244.72340425531914, 12.0)
    assert abs(x - 1799.5) < 1e-6 and abs(y - 1799.5) < 1e-6  # 0-based centre of 3600 px
    (ra0, _), (ra1, _) = w.pixel_to_world_values([0, 3599], [1799.5, 1799.5])
    assert ra0 > ra1  # east is left
    assert w.pixel_shape == (3600, 3600)
