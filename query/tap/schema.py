"""TAP_SCHEMA and VOSI ``/tables`` of the served lake, generated from :mod:`legacylake.catalogs_schema`.

Each lake catalog is served as two tables (schema ``lake``): ``NAME`` (the Tractor columns)
and ``NAME_derived`` (plus Astro Data Lab's derived columns); ``--alias`` adds
schema-qualified names (``ls_dr9.tractor``). Units and descriptions come from the lake's
Parquet field metadata (written by the ETL from ``catalogs_schema``) or ``catalogs_schema``
itself, UCDs from :mod:`legacylake.catalogs_schema.ucds`, datatypes and arraysize from the
Arrow types by the same mapping the results use (:func:`.votable.votable_type`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import pyarrow as pa

from legacylake.catalogs_schema.columns import column_info
from legacylake.catalogs_schema.ucds import ucd_of
from legacylake.query.sql import macros
from legacylake.query.sql import hosted
from legacylake.query.tap.votable import FieldMeta, votable_type

TAP_SCHEMA_TABLES = ("schemas", "tables", "columns", "keys", "key_columns")
LAKE_SCHEMA = "lake"
#: Columns flagged principal (shown first by clients) and indexed (spatially pruned).
PRINCIPAL = {"ra", "dec", "release", "brickid", "objid", "type", "flux_g", "flux_r", "flux_z",
             "mag_g", "mag_r", "mag_z"}
INDEXED = {"ra", "dec", "_healpix_29"}

#: ADQL 2.0 reserved words (SQL-92's and ADQL's own): column names equal to one are delimited.
RESERVED = frozenset("""
absolute action add all allocate alter and any are as asc assertion at authorization avg begin between bit
bit_length both by cascade cascaded case cast catalog char character character_length char_length check close
coalesce collate collation column commit connect connection constraint constraints continue convert corresponding
count create cross current current_date current_time current_timestamp current_user cursor date day deallocate dec
decimal declare default deferrable deferred delete desc describe descriptor diagnostics disconnect distinct domain
double drop else end end-exec escape except exception exec execute exists external extract false fetch first float
for foreign found from full get global go goto grant group having hour identity immediate in indicator initially inner
input insensitive insert int integer intersect interval into is isolation join key language last leading left level
like local lower match max min minute module month names national natural nchar next no not null nullif numeric
octet_length of on only open option or order outer output overlaps pad partial position precision prepare preserve
primary prior privileges procedure public read real references relative restrict revoke right rollback rows schema
scroll second section select session session_user set size smallint some space sql sqlcode sqlerror sqlstate
substring sum system_user table temporary then time timestamp timezone_hour timezone_minute to trailing transaction
translate translation trim true union unique unknown update upper usage user using value values varchar varying view
when whenever where with work write year zone
abs acos asin atan atan2 ceiling cos degrees exp floor log log10 mod pi power radians rand round sin sqrt tan top
truncate area box centroid circle contains coord1 coord2 coordsys distance intersects point polygon region
""".split())


def adql_name(name: str) -> str:
    """``name`` as ADQL must write it: delimited (``"by"``, ``"_healpix_29"``) unless a regular identifier."""
    regular = name[:1].isalpha() and all(c.isalnum() or c == "_" for c in name) and name.isascii()
    return name if regular and name.lower() not in RESERVED else '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=1024)
def vounit(unit: str) -> str:
    """``unit`` as astropy writes it into a VOTable FIELD (VOUnit: ``1/deg^2`` -> ``deg**-2``), so
    /tables, TAP_SCHEMA and results agree."""
    if not unit:
        return ""
    import warnings

    from astropy.io.votable.tree import Field, VOTableFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u = Field(VOTableFile(version="1.4"), name="x", datatype="double", unit=unit).unit
            return u.to_string("vounit") if hasattr(u, "to_string") else str(u)
        except Exception:
            return unit


_S, _I = pa.string(), pa.int32()
#: TAP 1.1 TAP_SCHEMA tables: (column, type, description).
_TS_COLUMNS = {
    "schemas": [("schema_name", _S, "schema name, for reference"), ("description", _S, "brief description of schema"),
                ("utype", _S, "UTYPE if schema corresponds to a data model"),
                ("schema_index", _I, "recommended sort order when listing schemas")],
    "tables": [("schema_name", _S, "the schema name from TAP_SCHEMA.schemas"),
               ("table_name", _S, "the fully qualified table name"),
               ("table_type", _S, "one of: table, view"), ("description", _S, "brief description of table"),
               ("utype", _S, "UTYPE if table corresponds to a data model"),
               ("table_index", _I, "recommended sort order when listing tables")],
    "columns": [("table_name", _S, "table name from TAP_SCHEMA.tables"), ("column_name", _S, "column name"),
                ("datatype", _S, "an XType or a TAPType"), ("arraysize", _S, "length of variable length datatypes"),
                ("xtype", _S, "a DALI or custom extended type annotation"),
                ("size", _I, "length of variable length datatypes (deprecated)"),
                ("description", _S, "brief description of column"), ("utype", _S, "UTYPE of column if any"),
                ("unit", _S, "unit in VO standard format"), ("ucd", _S, "UCD of column if any"),
                ("indexed", _I, "an indexed column; 1 means true, 0 means false"),
                ("principal", _I, "a principal column; 1 means true, 0 means false"),
                ("std", _I, "a standard column; 1 means true, 0 means false"),
                ("column_index", _I, "recommended sort order when listing columns")],
    "keys": [("key_id", _S, "unique key identifier"), ("from_table", _S, "fully qualified table name"),
             ("target_table", _S, "fully qualified table name"), ("description", _S, "description of this key"),
             ("utype", _S, "utype of this key")],
    "key_columns": [("key_id", _S, "key identifier from TAP_SCHEMA.keys"),
                    ("from_column", _S, "key column name in the from_table"),
                    ("target_column", _S, "key column name in the target_table")],
}
_TS_DESC = {"schemas": "description of schemas in this tableset", "tables": "description of tables in this tableset",
            "columns": "description of columns in this tableset", "keys": "description of foreign keys in this tableset",
            "key_columns": "description of foreign key columns in this tableset"}


#: TAP 1.1's foreign keys inside TAP_SCHEMA: (key_id, from table, target table, from column, target column).
TAP_SCHEMA_KEYS = [
    ("tables_schema", "TAP_SCHEMA.tables", "TAP_SCHEMA.schemas", "schema_name", "schema_name"),
    ("columns_table", "TAP_SCHEMA.columns", "TAP_SCHEMA.tables", "table_name", "table_name"),
    ("keys_from", "TAP_SCHEMA.keys", "TAP_SCHEMA.tables", "from_table", "table_name"),
    ("keys_target", "TAP_SCHEMA.keys", "TAP_SCHEMA.tables", "target_table", "table_name"),
    ("key_columns_key", "TAP_SCHEMA.key_columns", "TAP_SCHEMA.keys", "key_id", "key_id"),
]


@dataclass
class ColumnMeta:
    """One column as TAP_SCHEMA.columns and /tables describe it."""

    name: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    unit: str = ""
    ucd: str = ""
    description: str = ""
    principal: int = 0
    indexed: int = 0
    std: int = 0


@dataclass
class TableMeta:
    schema: str
    name: str
    description: str
    type: str
    columns: list[ColumnMeta]
    rows: int | None = None


@dataclass
class Meta:
    """The served tableset: schemas, tables, and result-field metadata by column name."""

    schemas: list[tuple[str, str]]
    tables: list[TableMeta]
    fields: dict[str, FieldMeta] = field(default_factory=dict)


def derived_description(name: str) -> tuple[str, str]:
    """(unit, description) of a ``_derived`` view column."""
    band = name.rsplit("_", 1)[-1]
    if name.startswith("dered_mag_"):
        return "mag", f"AB magnitude in {band} corrected for Galactic extinction, dered_mag(flux_{band}, mw_transmission_{band})"
    if name.startswith("mag_"):
        return "mag", f"AB magnitude in {band}, flux_to_mag(flux_{band}); NULL for flux <= 0"
    if name.startswith("dered_flux_"):
        return "nanomaggy", f"flux in {band} corrected for Galactic extinction"
    if name.startswith("snr_"):
        return "", f"signal-to-noise ratio of flux_{band}, flux_{band} * sqrt(flux_ivar_{band})"
    if name in ("g_r", "r_z", "z_w1", "w1_w2"):
        a, b = name.split("_")
        return "mag", f"colour {a} - {b} from dereddened magnitudes"
    if name == "ring256":
        return "", "ring-scheme HEALPix index at nside 256 (order 8), as Astro Data Lab's ring256"
    if name == "nest4096":
        return "", "nested HEALPix index at nside 4096 (order 12), as Astro Data Lab's nest4096"
    if name == "random_id":
        return "", "stable pseudo-random number in [0, 100) per source (Astro Data Lab's random_id)"
    if name in ("glon", "glat"):
        return "deg", "Galactic " + ("longitude" if name == "glon" else "latitude")
    if name in hosted.DERIVED_INFO:
        return hosted.DERIVED_INFO[name]
    return "", ""


def _column_meta(f: pa.Field, index: int) -> ColumnMeta:
    dt, size, xtype = votable_type(f.type)
    md = f.metadata or {}
    unit = md.get(b"unit", b"").decode()
    desc = md.get(b"description", b"").decode()
    if not desc:
        try:
            unit, desc = column_info(f.name)
        except KeyError:
            unit, desc = derived_description(f.name)
    return ColumnMeta(f.name, dt, size, xtype, vounit(unit or ""), ucd_of(f.name), desc,
                      int(f.name in PRINCIPAL), int(f.name in INDEXED))


def build(snap, cfg) -> Meta:
    """The tableset of a :class:`legacylake.query.tap.engine.Snapshot`."""
    schemas = [("TAP_SCHEMA", "the TAP_SCHEMA: what this service holds"),
               (LAKE_SCHEMA, f"catalogs of the lake {cfg.lake.name}: NAME holds the Tractor columns, NAME_derived adds "
                             "Astro Data Lab's derived columns (mag_*, dered_mag_*, snr_*, colours)")]
    tables = []
    for t, cols in _TS_COLUMNS.items():
        tables.append(TableMeta("TAP_SCHEMA", f"TAP_SCHEMA.{t}", _TS_DESC[t], "table",
                                [ColumnMeta(n, *votable_type(ty), description=d, std=1) for n, ty, d in cols]))
    alias_of: dict[str, list[str]] = {}
    for alias, target in cfg.aliases.items():
        alias_of.setdefault(target, []).append(alias)
    for name, cat in snap.cats.items():
        if not cat.files:
            continue
        for tname, derived in ((name, False), (f"{name}_derived", True)):
            schema = snap.con.sql(f'SELECT * FROM "{tname}" LIMIT 0').to_arrow_table().schema
            lake_fields = {f.name: f for f in cat.schema}
            cols = [_column_meta(lake_fields.get(f.name, f) if not derived or f.name in lake_fields else f, i)
                    for i, f in enumerate(schema)]
            for c, f in zip(cols, schema):   # the type as the query returns it (lake arrays keep their size)
                lf = lake_fields.get(f.name)
                c.datatype, c.arraysize, c.xtype = votable_type(
                    lf.type if lf is not None and pa.types.is_fixed_size_list(lf.type) else f.type)
            what = ("Tractor catalog" if not derived else "Tractor catalog with Astro Data Lab's derived columns")
            desc = f"{what} {name}: {snap.row_counts.get(name, 0):,} rows, release as in the lake"
            tables.append(TableMeta(LAKE_SCHEMA, tname, desc, "view" if derived else "table", cols,
                                    snap.row_counts.get(name)))
            if derived:
                for alias in alias_of.get(name, []):
                    sch = alias.split(".")[0] if "." in alias else LAKE_SCHEMA
                    if sch not in [s for s, _ in schemas]:
                        schemas.append((sch, f"Astro Data Lab-compatible names ({alias} = {name}_derived)"))
                    tables.append(TableMeta(sch, alias, f"{desc} (alias of {name}_derived)", "view", cols,
                                            snap.row_counts.get(name)))
    meta = Meta(schemas, tables)
    for t in tables:
        for c in t.columns:
            size = int(c.arraysize) if c.arraysize and c.arraysize.isdigit() else None
            meta.fields.setdefault(c.name, FieldMeta(c.unit, c.ucd, c.description, size))
    return meta


def _arrow(rows: list[tuple], table: str) -> pa.Table:
    cols = _TS_COLUMNS[table]
    return pa.table({n: pa.array([r[i] for r in rows], ty) for i, (n, ty, _) in enumerate(cols)})


def tap_schema_tables(meta: Meta) -> dict[str, pa.Table]:
    """The five TAP_SCHEMA tables as Arrow tables."""
    schemas = [(s, d, None, i) for i, (s, d) in enumerate(meta.schemas)]
    tables = [(t.schema, t.name, t.type, t.description, None, i) for i, t in enumerate(meta.tables)]
    columns = [(t.name, adql_name(c.name), c.datatype, c.arraysize, c.xtype, int(c.arraysize) if (c.arraysize or "*")[-1] != "*" else None,
                c.description, None, c.unit or None, c.ucd or None, c.indexed, c.principal, c.std, j)
               for t in meta.tables for j, c in enumerate(t.columns)]
    return {"schemas": _arrow(schemas, "schemas"), "tables": _arrow(tables, "tables"),
            "columns": _arrow(columns, "columns"),
            "keys": _arrow([(k, f, t, f"{f}.{fc} refers to {t}.{tc}", None) for k, f, t, fc, tc in TAP_SCHEMA_KEYS],
                           "keys"),
            "key_columns": _arrow([(k, fc, tc) for k, _, _, fc, tc in TAP_SCHEMA_KEYS], "key_columns")}


def install(con, meta: Meta) -> None:
    """Create schema TAP_SCHEMA and its tables on a lake connection (in memory)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS TAP_SCHEMA")
    for name, tbl in tap_schema_tables(meta).items():
        con.register("__ts", tbl)
        con.execute(f'CREATE OR REPLACE TABLE TAP_SCHEMA."{name}" AS SELECT * FROM __ts')
        con.unregister("__ts")


def tables_xml(meta: Meta, only: str | None = None) -> str:
    """VOSI tableset document (or one ``vosi:table`` when ``only`` names a table)."""
    def col(c: ColumnMeta) -> str:
        size = f' arraysize="{c.arraysize}"' if c.arraysize else ""
        xt = f' extendedType="{c.xtype}"' if c.xtype else ""
        parts = [f"<name>{escape(adql_name(c.name))}</name>"]
        if c.description:
            parts.append(f"<description>{escape(c.description)}</description>")
        if c.unit:
            parts.append(f"<unit>{escape(c.unit)}</unit>")
        if c.ucd:
            parts.append(f"<ucd>{escape(c.ucd)}</ucd>")
        parts.append(f'<dataType xsi:type="vs:VOTableType"{size}{xt}>{c.datatype}</dataType>')
        if c.indexed:
            parts.append("<flag>indexed</flag>")
        if c.principal:
            parts.append("<flag>primary</flag>")
        if c.std:
            parts.append("<flag>std</flag>")
        return "<column>" + "".join(parts) + "</column>"

    def table(t: TableMeta, root: bool = False) -> str:
        ns = (' xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"'
              ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"') if root else ""
        tag = "vosi:table" if root else "table"
        fks = "".join(f"<foreignKey><targetTable>{tt}</targetTable><fkColumn><fromColumn>{fc}</fromColumn>"
                      f"<targetColumn>{tc}</targetColumn></fkColumn></foreignKey>"
                      for _, ft, tt, fc, tc in TAP_SCHEMA_KEYS if ft == t.name)
        return (f'<{tag} type="{t.type}"{ns}><name>{escape(t.name)}</name>'
                f"<description>{escape(t.description)}</description>"
                + "".join(col(c) for c in t.columns) + fks + f"</{tag}>")

    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if only is not None:
        for t in meta.tables:
            if t.name.lower() == only.lower():
                return head + table(t, root=True)
        raise KeyError(only)
    body = []
    for s, d in meta.schemas:
        ts = [t for t in meta.tables if t.schema == s]
        body.append(f"<schema><name>{escape(s)}</name><description>{escape(d)}</description>"
                    + "".join(table(t) for t in ts) + "</schema>")
    return (head + '<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + "".join(body) + "</vosi:tableset>")


def functions() -> list[tuple[str, str, str]]:
    """(signature, meaning, example) of the lake's SQL functions callable from ADQL."""
    return [v for _, v in sorted(macros.FUNCTIONS.items())]
