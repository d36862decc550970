"""The DR9 and DR4 model-selection rules (reference 4.3, 4.4) on hand-made dchisq rows."""

import numpy as np
import pytest

from legacylake.photometry.model.selection import select_type


@pytest.mark.parametrize("row, expected", [
    ([100, 0, 0, 0, 0], "PSF"),            # only PSF computed
    ([20, 0, 0, 0, 0], ""),                # 20 - 2 < 25: dropped
    ([100, 100.5, 0, 0, 0], "PSF"),        # PSF - 2 >= REX - 3
    ([200, 201.5, 0, 0, 0], "PSF"),        # REX better, but by < 1% of PSF: revert to PSF
    ([28, 30.5, 0, 0, 0], "REX"),          # REX better by 2.5 > 1% of 28 and 28-2 >= 30.5-3 is False
    ([1000, 1020, 1040, 1025, 0], "DEV"),  # DEV beats REX by 20 > max(12, 10)
    ([1000, 1020, 1030, 1025, 0], "REX"),  # +10 < 12: stays REX
    ([1000, 1020, 1040, 1040, 0], "DEV"),  # tie EXP/DEV -> DEV
    ([1000, 1020, 1030, 1040, 0], "EXP"),
    ([1000, 1020, 1030, 1040, 1066], "SER"),  # SER - EXP >= 25
    ([1000, 1020, 1030, 1040, 1064], "EXP"),  # SER - EXP = 24
    ([10000, 10150, 10240, 10080, 0], "REX"),  # +90 < 1% of 10000 = 100
    ([10000, 10050, 10140, 10080, 0], "DEV"),  # REX reverts to PSF; DEV +140 > 100
    ([-5, -4, 0, 0, 0], ""),
])
def test_dr9_rules(row, expected):
    assert select_type(np.array([row], float), "dr9")[0] == expected


def test_dr9_reverts_to_none_then_galaxy_rescue():
    # REX barely above PSF and PSF - 2 < 25 -> "none"; a galaxy model 12+ above 0 rescues it
    assert select_type([[26.5, 26.6, 0, 0, 0]], "dr9")[0] == ""
    assert select_type([[26.5, 26.6, 40.0, 30.0, 0]], "dr9")[0] == "DEV"


@pytest.mark.parametrize("row, expected", [
    ([100, 90, 0, 0, 0], "PSF"),
    ([100, 110, 0, 0, 0], "SIMP"),
    ([26, 20, 0, 0, 0], ""),               # 26 - 2 < 25
    ([1000, 1010, 1040, 1030, 0], "DEV"),  # +30 > max(12, 20)
    ([1000, 1010, 1025, 1030, 0], "SIMP"), # +20 not > 20
    ([1000, 1010, 1040, 1050, 1080], "COMP"),
    ([1000, 1010, 1040, 1050, 1060], "EXP"),
])
def test_dr4_rules(row, expected):
    assert select_type(np.array([row], float), "dr4")[0] == expected


def test_vectorised_matches_rowwise_and_nan():
    rng = np.random.default_rng(3)
    d = np.abs(rng.normal(0, 200, (500, 5)))
    d[rng.random((500, 5)) < 0.3] = 0
    whole = select_type(d, "dr9")
    assert [select_type(r[None], "dr9")[0] for r in d] == list(whole)
    d2 = d.copy()
    d2[d2 == 0] = np.nan
    assert list(select_type(d2, "dr9")) == list(whole)
    with pytest.raises(ValueError):
        select_type(d, "dr7x")
