"""Which data model a table is (:func:`detect`) and how it differs from it (:func:`validate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from legacylake.catalogs_schema.column_types import ColumnType, types_from_arrow, types_from_dtype, types_from_header
from legacylake.catalogs_schema.columns import MODEL_NAMES, Column, DataModel, ReleaseKind, model


def column_types(obj: Any) -> dict[str, ColumnType | None]:
    """Column types of a table-like object: FITS header, numpy structured array or dtype,
    astropy Table, pyarrow Table/Schema, or a plain list of names (types unknown: None)."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover
        pa = None
    if hasattr(obj, "get") and "TFIELDS" in obj:
        return types_from_header(obj)
    if isinstance(obj, np.dtype):
        return types_from_dtype(obj)
    if isinstance(obj, np.ndarray) and obj.dtype.names:
        return types_from_dtype(obj.dtype)
    if hasattr(obj, "as_array") and hasattr(obj, "colnames"):  # astropy Table
        return types_from_dtype(obj.as_array().dtype)
    if pa is not None and isinstance(obj, (pa.Table, pa.Schema)):
        return types_from_arrow(obj.schema if isinstance(obj, pa.Table) else obj)
    if isinstance(obj, Iterable) and not isinstance(obj, (str, bytes)):
        return {str(n).lower(): None for n in obj}
    raise TypeError(f"cannot read columns from {type(obj).__name__}")


@dataclass
class Report(ReleaseKind):
    """Differences between a table and a data model."""

    model: str
    missing: list[str] = field(default_factory=list)  # required columns absent
    missing_optional: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # columns the model does not have
    mistyped: list[tuple[str, str, str]] = field(default_factory=list)  # (name, expected, found)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no required column is missing and none is mistyped."""
        return not self.missing and not self.mistyped

    def lines(self, verbose: bool = False) -> list[str]:
        """Human-readable differences, one per line (absent optional columns listed if verbose)."""
        out = []
        for n in self.missing:
            out.append(f"missing column: {n}")
        for n, exp, got in self.mistyped:
            out.append(f"mistyped column: {n}: expected {exp}, found {got}")
        if self.missing_optional:
            n = len(self.missing_optional)
            out.append(f"optional columns absent ({n}): {', '.join(self.missing_optional)}" if verbose
                       else f"{n} optional columns absent (--verbose lists them)")
        if self.extra:
            out.append(f"extra columns (kept, not in the model): {', '.join(self.extra)}")
        out.extend(self.notes)
        return out


def _compatible(col: Column, found: ColumnType) -> tuple[bool, str | None]:
    """(types match, note). Strings of another width match with a note."""
    if col.is_string:
        if found.kind != "char":
            return False, None
        if found.width and found.width != col.width:
            return True, f"{col.name}: string width {found.width} (model {col.width}); padding is stripped"
        return True, None
    if found.kind != col.fits_type:
        return False, None
    if tuple(found.shape) != tuple(col.shape):
        return False, None
    return True, None


def validate(table: Any, model_name: str | None = None) -> Report:
    """Compare a table (see :func:`column_types`) with a data model (detected if None)."""
    types = column_types(table)
    dm: DataModel = model(model_name) if model_name else model(detect(types).model)
    rep = Report(dm.name)
    for col in dm.columns:
        if col.name not in types:
            (rep.missing if col.required else rep.missing_optional).append(col.name)
            continue
        found = types[col.name]
        if found is None:
            continue
        ok, note = _compatible(col, found)
        if not ok:
            rep.mistyped.append((col.name, col.type_label, found.label))
        elif note:
            rep.notes.append(note)
    rep.extra = [n for n in types if n not in dm]
    return rep


@dataclass(frozen=True)
class Detection(ReleaseKind):
    """Result of :func:`detect`: the best-matching data model and how well it matched."""

    model: str
    missing: int
    extra: int


def detect(table: Any) -> Detection:
    """Which data model (``dr4``/``dr8``/``dr9``/``dr10``, ``tractor``/``sweep``) a table is.

    Accepts what :func:`column_types` accepts. The model with the fewest missing required
    columns wins, then the fewest extra columns, then the fewest mistyped columns.
    Raises ValueError when no model shares the key columns (release, brickid, objid, ra, dec).
    """
    types = column_types(table) if not isinstance(table, dict) else table
    key = {"brickid", "objid", "ra", "dec"}
    if not key <= set(types):
        raise ValueError(
            f"not a Legacy Surveys catalog: key columns {', '.join(sorted(key - set(types)))} are absent")
    best = None
    for name in MODEL_NAMES:
        rep = validate(types, name)
        score = (len(rep.missing), len(rep.extra), len(rep.mistyped))
        if best is None or score < best[0]:
            best = (score, name)
    (missing, extra, _), name = best
    return Detection(name, missing, extra)
