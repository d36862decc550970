"""Reading the table header of a catalog FITS file, with clear errors for files that are not."""

from __future__ import annotations

import os

from astropy.io import fits


class NotACatalogError(ValueError):
    """The file is not a FITS binary table catalog (message names the file and the reason)."""


def table_header(path: str | os.PathLike) -> tuple[fits.Header, str]:
    """(header, extension name) of the first binary-table HDU of a FITS file.

    Raises :class:`NotACatalogError` naming the file when it is missing, not FITS,
    truncated, or has no binary table.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotACatalogError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(9)
    if magic != b"SIMPLE  =":
        raise NotACatalogError(f"{path}: not a FITS file (no SIMPLE card at the start)")
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            for i, hdu in enumerate(hdul):
                if isinstance(hdu, fits.BinTableHDU):
                    return hdu.header.copy(), hdu.name or str(i)
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise NotACatalogError(f"{path}: unreadable FITS ({exc})") from None
    raise NotACatalogError(f"{path}: FITS file without a binary table extension")
