"""VOSI documents (capabilities, availability) and the DALI examples of the service.

The examples are Astro Data Lab-style science queries written for the lake being served
(its catalog names, a position inside its footprint), so each runs as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from legacylake.query.sql import macros
from legacylake.query.tap.votable import FORMATS

#: Geometry functions the service implements (TAPRegExt adqlgeo feature names).
GEOMETRY = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2",
            "COORDSYS", "CENTROID", "AREA")


@dataclass(frozen=True)
class Example:
    """One example query: id, title, what it shows, ADQL, and the upload it needs (if any)."""

    id: str
    name: str
    text: str
    query: str
    upload: str | None = None


def examples(catalog: str, ra: float, dec: float, alias: str | None = None) -> list[Example]:
    """Example queries for lake catalog ``catalog`` around (ra, dec) deg."""
    t, d = catalog, f"{catalog}_derived"
    ex = [
        Example("cone", "Cone search (1 arcmin)",
                "Sources within 1 arcmin of a position, with dereddened magnitudes; CONTAINS on ra, dec "
                "reads only the partitions and row groups the circle touches.",
                f"SELECT ra, dec, type, dered_mag_g, dered_mag_r, dered_mag_z\nFROM {d}\n"
                f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra:.4f}, {dec:.4f}, 1.0/60))"),
        Example("colour-cut", "Colour-selected point sources",
                "Point sources with g - r between 0.2 and 0.8, r < 22 and no mask bit set.",
                f"SELECT TOP 100 ra, dec, dered_mag_r, g_r, r_z\nFROM {d}\n"
                f"WHERE type = 'PSF' AND dered_mag_r < 22 AND g_r BETWEEN 0.2 AND 0.8\n"
                f"  AND maskbits = 0\nORDER BY dered_mag_r"),
        Example("types", "Counts by morphological type",
                "How many sources of each Tractor type, with their mean r magnitude.",
                f"SELECT type, COUNT(*) AS n, AVG(flux_to_mag(flux_r)) AS mean_mag_r\nFROM {t}\n"
                "GROUP BY type\nORDER BY n DESC"),
        Example("snr", "High signal-to-noise galaxies in a box",
                "Extended sources with S/N > 10 in z inside a 0.2 x 0.2 deg box.",
                f"SELECT TOP 50 ra, dec, type, snr_z, shape_r\nFROM {d}\n"
                f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', {ra:.4f}, {dec:.4f}, 0.2, 0.2))\n"
                "  AND type <> 'PSF' AND snr_z > 10\nORDER BY snr_z DESC"),
        Example("random-sample", "A 1% random sample",
                "Astro Data Lab's random_id column picks a stable pseudo-random subset.",
                f"SELECT COUNT(*) AS n, AVG(ebv) AS mean_ebv\nFROM {d}\nWHERE random_id < 1"),
        Example("xmatch", "Crossmatch an uploaded table",
                "Every lake source within 1 arcsec of each row of an uploaded table (TAP_UPLOAD.mine, "
                "with columns ra, dec): the join runs as the lake's crossmatch, not a cross join.",
                f"SELECT u.*, t.objid, t.type, DISTANCE(POINT('ICRS', t.ra, t.dec), "
                f"POINT('ICRS', u.ra, u.dec)) * 3600 AS sep_arcsec\nFROM {t} AS t\n"
                "JOIN TAP_UPLOAD.mine AS u\n"
                "  ON 1 = CONTAINS(POINT('ICRS', t.ra, t.dec), CIRCLE('ICRS', u.ra, u.dec, 1.0/3600))",
                upload="mine"),
    ]
    if alias:
        ex.append(Example("datalab", f"An Astro Data Lab query on {alias}, unchanged",
                          f"{alias} has Data Lab's derived columns and q3c_radial_query.",
                          f"SELECT TOP 20 ra, dec, mag_g, mag_r, mag_z\nFROM {alias}\n"
                          f"WHERE q3c_radial_query(ra, dec, {ra:.4f}, {dec:.4f}, 0.05)"))
    return ex


def examples_xhtml(exs: list[Example], title: str) -> str:
    """The DALI examples document (XHTML with RDFa)."""
    body = []
    for e in exs:
        extra = f"<p>Needs an uploaded table: TAP_UPLOAD.{e.upload}</p>" if e.upload else ""
        body.append(f'<div typeof="example" id="{e.id}" resource="#{e.id}">'
                    f'<h2 property="name">{escape(e.name)}</h2><p>{escape(e.text)}</p>{extra}'
                    f'<pre property="query">{escape(e.query)}</pre></div>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml"><head><meta charset="UTF-8"/>'
            f"<title>{escape(title)}: examples</title></head>"
            '<body vocab="http://www.ivoa.net/rdf/examples#">'
            f"<h1>{escape(title)}: example queries</h1>" + "".join(body) + "</body></html>")


def availability_xml(up: bool, note: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
            f"<vosi:available>{'true' if up else 'false'}</vosi:available>"
            f"<vosi:note>{escape(note)}</vosi:note></vosi:availability>")


def _udf_form(sig: str) -> str | None:
    """A TAPRegExt UDF form (``name(arg TYPE, ...) -> TYPE``) for numeric functions, None otherwise."""
    m = re.fullmatch(r"(\w+)\((.*)\)", sig)
    if not m or m.group(1).startswith(("has_", "no_", "q3c_radial")) or m.group(1).endswith("_names"):
        return None
    args = []
    for a in (x.strip() for x in m.group(2).split(",") if x.strip()):
        if a.startswith("'") or a in ("band",):
            args.append(f"{re.sub(r'[^a-z0-9_]', '', a.lower()) or 'names'} VARCHAR")
        elif a in ("order",):
            args.append("order_ INTEGER")
        else:
            args.append(f"{re.sub(r'[^a-z0-9_]', '_', a.lower())} DOUBLE")
    ret = "VARCHAR" if m.group(1) == "brickname_of" else \
        "BIGINT" if m.group(1) in ("brickid_of", "healpix_of", "nest_to_ring") or m.group(1).endswith("_value") else "DOUBLE"
    return f"{m.group(1)}({', '.join(args)}) -> {ret}"


def capabilities_xml(base: str, max_rows: int, default_maxrec: int, timeout: float, upload_rows: int,
                     retention_s: int) -> str:
    """VOSI capabilities: TAP 1.1 (ADQL 2.0/2.1 with geometry and the lake's functions, formats,
    upload, limits), VOSI capabilities/availability/tables and DALI examples."""
    def iface(path: str, role: str = "") -> str:
        r = f' role="{role}" version="1.1"' if role else ""
        return (f'<interface xsi:type="vs:ParamHTTP"{r}><accessURL use="base">{escape(base + path)}</accessURL>'
                "</interface>")

    udfs = "".join(f"<feature><form>{escape(f)}</form><description>{escape(desc)}</description></feature>"
                   for sig, desc, _ in (macros.FUNCTIONS[k] for k in sorted(macros.FUNCTIONS))
                   if (f := _udf_form(sig)))
    geo = "".join(f"<feature><form>{g}</form></feature>" for g in GEOMETRY)
    seen, fmts = set(), []
    for key, (fmt, mime) in FORMATS.items():
        if fmt in seen or "/" not in mime:
            continue
        seen.add(fmt)
        alias = {"binary2": "votable", "tabledata": "votable/td"}.get(fmt, fmt)
        fmts.append(f"<outputFormat><mime>{escape(mime)}</mime><alias>{alias}</alias></outputFormat>")
    lim = (f'<retentionPeriod><default>{retention_s}</default></retentionPeriod>'
           f'<executionDuration><default>{int(timeout)}</default></executionDuration>'
           f'<outputLimit><default unit="row">{default_maxrec}</default><hard unit="row">{max_rows}</hard></outputLimit>'
           f'<uploadLimit><hard unit="row">{upload_rows}</hard></uploadLimit>')
    tap = ('<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">' + iface("", "std")
           + '<language><name>ADQL</name>'
           '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>'
           '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>'
           "<description>ADQL on DuckDB; the lake's SQL functions are callable</description>"
           f'<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">{udfs}</languageFeatures>'
           f'<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{geo}</languageFeatures>'
           '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-string">'
           "<feature><form>LOWER</form></feature><feature><form>ILIKE</form></feature></languageFeatures>"
           '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-offset">'
           "<feature><form>OFFSET</form></feature></languageFeatures>"
           "</language>" + "".join(fmts)
           + '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
           + '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>' + lim + "</capability>")
    others = "".join(
        f'<capability standardID="{sid}">{iface(path)}</capability>'
        for sid, path in (("ivo://ivoa.net/std/VOSI#capabilities", "/capabilities"),
                          ("ivo://ivoa.net/std/VOSI#availability", "/availability"),
                          ("ivo://ivoa.net/std/VOSI#tables-1.1", "/tables"),
                          ("ivo://ivoa.net/std/DALI#examples", "/examples")))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0">' + tap + others + "</vosi:capabilities>")
