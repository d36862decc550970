"""Column tables of the Legacy Surveys data models, loaded from the data files in ``data/``.

``data/columns.yaml`` holds each column's unit and description (once per column, band
templates allowed); ``data/models/<model>.csv`` lists each data model's columns with their
FITS type. :func:`model` joins the two into a :class:`DataModel` of :class:`Column` rows.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pyarrow as pa
import yaml

from legacylake.catalogs_schema.model_names import MODEL_NAMES


#: Band names a ``{band}`` placeholder matches, and how prose writes them.
_BANDS = {"u": "u", "g": "g", "r": "r", "i": "i", "z": "z", "y": "Y",
          "w1": "W1", "w2": "W2", "w3": "W3", "w4": "W4"}

_SCALARS: dict[str, tuple[pa.DataType, str, str]] = {
    # published type: (Arrow type, numpy dtype, FITS TFORM letter)
    "int16": (pa.int16(), "i2", "I"),
    "int32": (pa.int32(), "i4", "J"),
    "int64": (pa.int64(), "i8", "K"),
    "uint8": (pa.uint8(), "u1", "B"),
    "float32": (pa.float32(), "f4", "E"),
    "float64": (pa.float64(), "f8", "D"),
    "boolean": (pa.bool_(), "?", "L"),
    "bool": (pa.bool_(), "?", "L"),
}
_TYPE_RE = re.compile(r"^(?P<base>[a-z0-9]+)(?:\[(?P<n>\d+)\])?$")


@dataclass(frozen=True)
class Column:
    """One catalog column.

    ``fits_type`` is the published element type (``int16``, ``float32``, ``char``),
    ``shape`` the array length (``()`` for scalars; for ``char`` columns the string width
    is ``width`` and shape is ``()``), ``unit`` an astropy-parsable string (``""`` for none).
    """

    name: str
    fits_type: str
    shape: tuple[int, ...]
    width: int
    unit: str
    description: str
    required: bool
    releases: tuple[str, ...]

    @property
    def is_string(self) -> bool:
        return self.fits_type == "char"

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type in the lake: strings, fixed-size lists for FITS arrays, widths kept."""
        if self.is_string:
            return pa.string()
        base = _SCALARS[self.fits_type][0]
        return pa.list_(base, self.shape[0]) if self.shape else base

    @property
    def numpy_dtype(self) -> np.dtype:
        """numpy dtype of one element (``U<width>`` for strings)."""
        if self.is_string:
            return np.dtype(f"U{self.width}")
        return np.dtype(_SCALARS[self.fits_type][1])

    @property
    def tform(self) -> str:
        """FITS binary-table TFORM, e.g. ``E``, ``8E``, ``3A``."""
        if self.is_string:
            return f"{self.width}A"
        letter = _SCALARS[self.fits_type][2]
        return f"{self.shape[0]}{letter}" if self.shape else letter

    @property
    def type_label(self) -> str:
        """The published type, e.g. ``float32[8]`` or ``char[3]``."""
        if self.is_string:
            return f"char[{self.width}]"
        return f"{self.fits_type}[{self.shape[0]}]" if self.shape else self.fits_type


class ReleaseKind:
    """Mixin: ``release`` and ``kind`` of an object that names a data model (``dr9-tractor``)."""

    _model_attr = "model"

    @property
    def release(self) -> str:
        return getattr(self, self._model_attr).split("-")[0]

    @property
    def kind(self) -> str:
        return getattr(self, self._model_attr).split("-")[1]


@dataclass(frozen=True)
class DataModel(ReleaseKind):
    """A data model: an ordered set of columns (``dr9-tractor``, ``dr8-sweep``, ...)."""

    name: str
    columns: tuple[Column, ...]
    _model_attr = "name"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]

    def __getitem__(self, name: str) -> Column:
        return self._by_name()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name()

    def get(self, name: str) -> Column | None:
        return self._by_name().get(name.lower())

    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema with each field's unit and description in its metadata."""
        return pa.schema([arrow_field(c) for c in self.columns])


def arrow_field(col: Column) -> pa.Field:
    """Arrow field for a column, with ``unit`` and ``description`` field metadata."""
    meta = {"description": col.description}
    if col.unit:
        meta["unit"] = col.unit
    return pa.field(col.name, col.arrow_type, nullable=True, metadata=meta)


def parse_type(label: str) -> tuple[str, tuple[int, ...], int]:
    """``float32[8]`` -> ("float32", (8,), 0); ``char[3]`` -> ("char", (), 3)."""
    m = _TYPE_RE.match(label.strip())
    if not m:
        raise ValueError(f"unparsable column type {label!r}")
    base, n = m.group("base"), m.group("n")
    if base == "char":
        return "char", (), int(n or 1)
    if base not in _SCALARS:
        raise ValueError(f"unknown column type {label!r}")
    return ("bool" if base == "boolean" else base), ((int(n),) if n else ()), 0


@functools.cache
def _column_info() -> tuple[dict[str, dict], list[tuple[re.Pattern, dict]]]:
    text = resources.files(__package__).joinpath("data/columns.yaml").read_text()
    raw = yaml.safe_load(text)["columns"]
    exact, templates = {}, []
    for key, info in raw.items():
        if "{band}" in key:
            pat = "^" + re.escape(key).replace(r"\{band\}", "(?P<band>" + "|".join(_BANDS) + ")") + "$"
            templates.append((re.compile(pat), info))
        else:
            exact[key] = info
    return exact, templates


def column_info(name: str) -> tuple[str, str]:
    """(unit, description) of a column name; KeyError if the project does not know it."""
    exact, templates = _column_info()
    name = name.lower()
    if name in exact:
        return exact[name]["unit"], exact[name]["desc"]
    for pat, info in templates:
        m = pat.match(name)
        if m:
            band = m.group("band")
            desc = info["desc"].replace("{BAND}", _BANDS[band]).replace("{band}", band)
            return info["unit"], desc
    raise KeyError(f"column {name!r} is not described in catalogs_schema/data/columns.yaml")


@functools.cache
def _model_rows(name: str) -> list[tuple[str, str, bool]]:
    path = resources.files(__package__).joinpath(f"data/models/{name}.csv")
    with path.open() as fh:
        return [(r["name"], r["type"], r["required"] == "1") for r in csv.DictReader(fh)]


@functools.cache
def _releases_of() -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for m in MODEL_NAMES:
        rel = m.split("-")[0]
        for n, _, _ in _model_rows(m):
            if rel not in out.setdefault(n, []):
                out[n].append(rel)
    return {k: tuple(v) for k, v in out.items()}


@functools.cache
def model(name: str) -> DataModel:
    """The data model ``name`` (one of :data:`MODEL_NAMES`, e.g. ``dr9-tractor``)."""
    key = name.lower().replace("_", "-")
    if key not in MODEL_NAMES:
        raise KeyError(f"unknown data model {name!r}; valid: {', '.join(MODEL_NAMES)}")
    cols = []
    rel = _releases_of()
    for n, t, req in _model_rows(key):
        base, shape, width = parse_type(t)
        unit, desc = column_info(n)
        cols.append(Column(n, base, shape, width, unit, desc, req, rel[n]))
    return DataModel(key, tuple(cols))


def all_models() -> list[DataModel]:
    return [model(m) for m in MODEL_NAMES]
