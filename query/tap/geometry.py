"""ADQL geometry on the syntax tree: POINT, CIRCLE, BOX, POLYGON, CONTAINS, INTERSECTS, DISTANCE,
COORD1, COORD2, COORDSYS, CENTROID and AREA become DuckDB expressions over our ``ang_sep``.

All angles are degrees, ICRS. BOX(ra, dec, width, height) is the RA/Dec box
``|dec - dec0| <= height/2`` and RA within ``width/2`` of ``ra0`` (wrapping through 0),
as :meth:`legacylake.query.spatial.regions.Region.box`. POLYGON edges are great circles.
:func:`point_in_region` and :func:`pair_within` recognise the constraints the service turns
into pruned reads and crossmatches.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from legacylake.errors import UserError
from legacylake.query.spatial.regions import Region, polygon_area_deg2

#: Geometry function names (lower case).
NAMES = frozenset({"point", "circle", "box", "polygon", "contains", "intersects", "distance", "coord1",
                   "coord2", "coordsys", "centroid", "area"})
_SHAPES = {"point": 2, "circle": 3, "box": 4}


def _name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Contains):
        return "contains"
    return None


def _args(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Contains):
        return [node.this, node.expression]
    return list(node.expressions)


def shape(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """(kind, scalar arguments) of a POINT/CIRCLE/BOX/POLYGON call, coordinate system dropped and
    ADQL 2.1's POINT-valued arguments flattened; None for anything else."""
    kind = _name(node)
    if kind not in ("point", "circle", "box", "polygon"):
        return None
    args = _args(node)
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        sys = args[0].this.strip().upper()
        if sys and not sys.startswith("ICRS") and sys not in ("J2000", "FK5"):
            raise UserError(f"coordinate system '{args[0].this}' in {kind.upper()} is not supported (the lake is ICRS)")
        args = args[1:]
    flat = []
    for a in args:
        inner = shape(a)
        if inner is not None and inner[0] == "point":
            flat += inner[1]
        else:
            flat.append(a)
    want = _SHAPES.get(kind)
    if (want and len(flat) != want) or (kind == "polygon" and (len(flat) < 6 or len(flat) % 2)):
        need = f"{want} numbers" if want else "3 or more (ra, dec) vertices"
        raise UserError(f"{kind.upper()} needs {need} after the optional coordinate system, got {len(flat)} arguments")
    return kind, flat


def const(node: exp.Expression) -> float | None:
    """The value of a numeric constant expression (literals, sign, + - * /), else None."""
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Paren):
        return const(node.this)
    if isinstance(node, exp.Neg):
        v = const(node.this)
        return None if v is None else -v
    ops = {exp.Add: float.__add__, exp.Sub: float.__sub__, exp.Mul: float.__mul__, exp.Div: float.__truediv__}
    for cls, fn in ops.items():
        if type(node) is cls:
            a, b = const(node.this), const(node.expression)
            return None if a is None or b is None or (cls is exp.Div and b == 0) else fn(a, b)
    return None


def region_of(kind: str, args: list[exp.Expression]) -> Region | None:
    """The :class:`Region` of a CIRCLE/BOX/POLYGON with constant arguments (None otherwise)."""
    vals = [const(a) for a in args]
    if any(v is None for v in vals):
        return None
    if kind == "circle":
        return Region.cone(*vals)
    if kind == "box":
        ra, dec, w, h = vals
        if w >= 360:
            return Region.box(0.0, 360.0, dec - h / 2, dec + h / 2)
        return Region.box(ra - w / 2, ra + w / 2, max(-90.0, dec - h / 2), min(90.0, dec + h / 2))
    if kind == "polygon":
        return Region.polygon(vals)
    return None


def _is_one(node: exp.Expression, value: int) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and const(node) == value


def _predicate_call(cond: exp.Expression) -> tuple[exp.Expression, bool] | None:
    """(CONTAINS/INTERSECTS call, truth) of ``1 = CONTAINS(...)``-style comparisons."""
    if not isinstance(cond, (exp.EQ, exp.NEQ)):
        return None
    for a, b in ((cond.this, cond.expression), (cond.expression, cond.this)):
        if _name(b) in ("contains", "intersects") and (_is_one(a, 1) or _is_one(a, 0)):
            return b, _is_one(a, 1) == isinstance(cond, exp.EQ)
    return None


def point_in_region(cond: exp.Expression):
    """((ra column, dec column), Region) when ``cond`` is ``1 = CONTAINS(POINT(col, col), REGION(constants))``
    (or INTERSECTS with a point), else None."""
    hit = _predicate_call(cond)
    if hit is None or not hit[1]:
        return None
    a, b = (shape(x) for x in _args(hit[0])[:2])
    if a and b and a[0] != "point" and b[0] == "point" and _name(hit[0]) == "intersects":
        a, b = b, a
    if not (a and b and a[0] == "point" and b[0] != "point"):
        return None
    if not all(isinstance(c, exp.Column) for c in a[1]):
        return None
    region = region_of(*b)
    return (tuple(a[1]), region) if region is not None else None


def pair_within(cond: exp.Expression):
    """(((ra1, dec1), (ra2, dec2)), radius deg) when ``cond`` puts two column positions within a
    constant radius: ``1 = CONTAINS(POINT(a), CIRCLE(b, r))`` or ``DISTANCE(a, b) < r``."""
    hit = _predicate_call(cond)
    if hit is not None and hit[1]:
        a, b = (shape(x) for x in _args(hit[0])[:2])
        if a and b and a[0] == "point" and b[0] == "circle":
            r = const(b[1][2])
            if r is not None and all(isinstance(c, exp.Column) for c in a[1] + b[1][:2]):
                return (tuple(a[1]), tuple(b[1][:2])), r
        return None
    if isinstance(cond, (exp.LT, exp.LTE)):
        d, r = cond.this, const(cond.expression)
    elif isinstance(cond, (exp.GT, exp.GTE)):
        d, r = cond.expression, const(cond.this)
    else:
        return None
    if r is None or _name(d) != "distance":
        return None
    pts = _distance_points(d)
    if all(isinstance(c, exp.Column) for c in pts[0] + pts[1]):
        return pts, r
    return None


def _distance_points(node: exp.Expression):
    args = _args(node)
    if len(args) == 4:
        return (args[0], args[1]), (args[2], args[3])
    if len(args) == 2:
        a, b = shape(args[0]), shape(args[1])
        if a and b and a[0] == b[0] == "point":
            return tuple(a[1]), tuple(b[1])
    raise UserError("DISTANCE takes two POINTs or four numbers (ra1, dec1, ra2, dec2)")


# ---------------------------------------------------------------- rewriting


def _call(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _sep(p, q) -> exp.Expression:
    return _call("ang_sep", p[0], p[1], q[0], q[1])


def _num(v: float) -> exp.Expression:
    return exp.Literal.number(repr(float(v)))


def _contains(a, b) -> exp.Expression:
    """Boolean DuckDB expression: geometry ``a`` inside geometry ``b``."""
    (ka, xa), (kb, xb) = a, b
    if ka == "point" and kb == "circle":
        return exp.LTE(this=_sep(xa, xb[:2]), expression=xb[2])
    if ka == "point" and kb == "box":
        half_h = exp.Div(this=exp.paren(xb[3]), expression=_num(2))
        half_w = exp.Div(this=exp.paren(xb[2]), expression=_num(2))
        diff = exp.Sub(this=exp.paren(xa[0]), expression=exp.paren(xb[0]))
        wrapped = exp.Mod(this=exp.paren(exp.Add(this=exp.Mod(this=exp.paren(diff), expression=_num(360)),
                                                 expression=_num(540))), expression=_num(360))
        dra = _call("abs", exp.Sub(this=wrapped, expression=_num(180)))
        ddec = _call("abs", exp.Sub(this=exp.paren(xa[1]), expression=exp.paren(xb[1])))
        return exp.and_(exp.LTE(this=ddec, expression=half_h), exp.LTE(this=dra, expression=half_w))
    if ka == "point" and kb == "polygon":
        region = region_of(kb, xb)
        if region is None:
            raise UserError("POLYGON vertices must be numeric constants")
        text = region.sql_predicate(xa[0].sql(dialect="duckdb"), xa[1].sql(dialect="duckdb"))
        return exp.paren(sqlglot.parse_one(text, read="duckdb"))
    if ka == "circle" and kb == "circle":
        return exp.LTE(this=exp.Add(this=_sep(xa[:2], xb[:2]), expression=xa[2]), expression=xb[2])
    raise UserError(f"CONTAINS({ka.upper()}, {kb.upper()}) is not supported (POINT in CIRCLE/BOX/POLYGON, "
                    "CIRCLE in CIRCLE)")


def _intersects(a, b) -> exp.Expression:
    if a[0] == "point":
        return _contains(a, b)
    if b[0] == "point":
        return _contains(b, a)
    if a[0] == b[0] == "circle":
        return exp.LTE(this=_sep(a[1][:2], b[1][:2]), expression=exp.Add(this=a[1][2], expression=b[1][2]))
    raise UserError(f"INTERSECTS({a[0].upper()}, {b[0].upper()}) is not supported (POINT with any region, "
                    "CIRCLE with CIRCLE)")


def _geom_arg(node: exp.Expression, what: str):
    s = shape(node)
    if s is None:
        raise UserError(f"{what} needs geometry arguments (POINT, CIRCLE, BOX, POLYGON), got '{node.sql()}'")
    return s[0], [rewrite(x) for x in s[1]]


def _area(kind: str, x) -> exp.Expression:
    sq = "(180.0 / pi()) ^ 2"
    if kind == "circle":
        return sqlglot.parse_one(f"2 * pi() * (1 - cos(radians(({x[2].sql('duckdb')})))) * {sq}", read="duckdb")
    if kind == "box":
        ra, dec, w, h = (v.sql("duckdb") for v in x)
        return sqlglot.parse_one(f"radians(({w})) * (sin(radians(least(90.0, ({dec}) + ({h}) / 2))) - "
                                 f"sin(radians(greatest(-90.0, ({dec}) - ({h}) / 2)))) * {sq}", read="duckdb")
    vals = [const(v) for v in x]
    if kind != "polygon" or len(vals) < 6 or len(vals) % 2 or any(v is None for v in vals):
        raise UserError(f"AREA({kind.upper()}) is not supported (CIRCLE, BOX, and POLYGON with constant vertices)")
    return exp.Cast(this=exp.Literal.number(repr(polygon_area_deg2(vals[0::2], vals[1::2]))),
                    to=exp.DataType.build("DOUBLE"))


def rewrite(node: exp.Expression) -> exp.Expression:
    """``node`` with every ADQL geometry call replaced by DuckDB SQL (in place where possible)."""
    hit = _predicate_call(node)
    if hit is not None:
        call, truth = hit
        pred = _rewrite_call(call, boolean=True)
        return pred if truth else exp.Not(this=exp.paren(pred))
    name = _name(node)
    if name in NAMES:
        new = _rewrite_call(node, boolean=False)
        if node.parent is not None:
            node.replace(new)
        return new
    for child in list(node.iter_expressions()):
        new = rewrite(child)
        if new is not child and child.parent is not None:
            child.replace(new)
    return node


def _rewrite_call(node: exp.Expression, boolean: bool) -> exp.Expression:
    name = _name(node)
    args = _args(node)
    if name in ("contains", "intersects"):
        if len(args) != 2:
            raise UserError(f"{name.upper()} takes two geometries")
        a, b = _geom_arg(args[0], name.upper()), _geom_arg(args[1], name.upper())
        pred = exp.paren(_contains(a, b) if name == "contains" else _intersects(a, b))
        return pred if boolean else exp.Cast(this=exp.paren(pred), to=exp.DataType.build("INTEGER"))
    if name == "distance":
        p, q = _distance_points(node)
        return _sep([rewrite(v) for v in p], [rewrite(v) for v in q])
    if name in ("coord1", "coord2"):
        kind, x = _geom_arg(args[0] if args else exp.null(), name.upper())
        if kind != "point":
            raise UserError(f"{name.upper()} takes a POINT, got {kind.upper()}")
        return x[0] if name == "coord1" else x[1]
    if name == "coordsys":
        return exp.Literal.string("ICRS")
    if name == "area":
        return _area(*_geom_arg(args[0] if args else exp.null(), "AREA"))
    if name == "centroid":
        kind, x = _geom_arg(args[0] if args else exp.null(), "CENTROID")
        if kind not in ("circle", "box", "point"):
            raise UserError(f"CENTROID({kind.upper()}) is not supported")
        return _call("list_value", x[0], x[1])
    kind, x = _geom_arg(node, name.upper())
    return _call("list_value", *x)
