"""The landing page at ``/``: what the service holds (tables, row counts, columns with units),
the example queries, the lake's functions, and a form that runs ADQL and shows the result as
an HTML table with a link to the same result as VOTable."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

import pyarrow as pa

_STYLE = """body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}
textarea{width:100%;font-family:monospace}pre{background:#f4f4f4;padding:.5em;white-space:pre-wrap}
.error{color:#a00;font-weight:bold}"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


def _form(query: str, maxrec: int = 100) -> str:
    return ("<form id='adql-form' method='get' action='ui/query'>"
            f"<textarea id='query' name='QUERY' rows='6'>{escape(query)}</textarea><br>"
            f"MAXREC <input id='maxrec' name='MAXREC' size='6' value='{maxrec}'> "
            "<button id='run' type='submit'>Run ADQL</button></form>")


def index_html(name: str, meta, exs, functions, url: str) -> str:
    """The landing page. ``meta``: :class:`legacylake.query.tap.schema.Meta`; ``exs``: examples."""
    parts = [f"<h1>{escape(name)}</h1>",
             f"<p>An IVOA TAP 1.1 service over a Legacy Surveys HATS lake. TAP URL: <code>{escape(url)}</code> "
             "(TOPCAT: VO &rarr; Table Access Protocol; pyvo: <code>pyvo.dal.TAPService(url)</code>). "
             "<a href='capabilities'>capabilities</a> &middot; <a href='tables'>tables</a> &middot; "
             "<a href='examples'>examples</a> &middot; <a href='availability'>availability</a></p>",
             "<h2>Run a query</h2>", _form(exs[0].query if exs else "SELECT TOP 10 * FROM TAP_SCHEMA.tables"),
             "<h2 id='tables'>Tables</h2><table id='table-list'><tr><th>table</th><th>rows</th><th>description</th></tr>"]
    for t in meta.tables:
        rows = f"{t.rows:,}" if t.rows is not None else ""
        parts.append(f"<tr><td>{escape(t.name)}</td><td class='rows'>{rows}</td><td>{escape(t.description)}</td></tr>")
    parts.append("</table>")
    for t in meta.tables:
        if t.schema == "TAP_SCHEMA":
            continue
        cols = "".join(f"<tr><td>{escape(c.name)}</td><td>{escape(c.datatype)}{'[' + c.arraysize + ']' if c.arraysize and c.datatype != 'char' else ''}"
                       f"</td><td>{escape(c.unit)}</td><td>{escape(c.ucd)}</td><td>{escape(c.description)}</td></tr>"
                       for c in t.columns)
        parts.append(f"<details><summary>columns of {escape(t.name)} ({len(t.columns)})</summary><table>"
                     f"<tr><th>column</th><th>type</th><th>unit</th><th>UCD</th><th>description</th></tr>{cols}</table>"
                     "</details>")
    parts.append("<h2 id='examples'>Example queries</h2>")
    for e in exs:
        link = "ui/query?" + urlencode({"QUERY": e.query, "MAXREC": 100})
        run = "" if e.upload else f" <a href='{escape(link)}'>run</a>"
        parts.append(f"<h3>{escape(e.name)}{run}</h3><p>{escape(e.text)}</p><pre>{escape(e.query)}</pre>")
    parts.append("<h2>Functions</h2><table><tr><th>function</th><th>meaning</th></tr>"
                 + "".join(f"<tr><td><code>{escape(s)}</code></td><td>{escape(d)}</td></tr>" for s, d, _ in functions)
                 + "</table>")
    return _page(name, "".join(parts))


def result_html(name: str, query: str, maxrec: int, table: pa.Table | None, error: str | None,
                overflow: bool = False) -> str:
    """The form again, then the result as an HTML table (or the error) and a VOTable link."""
    vot = "../sync?" + urlencode({"LANG": "ADQL", "QUERY": query, "MAXREC": maxrec})
    parts = [f"<h1>{escape(name)}</h1><p><a href='../'>back to the service page</a></p>", _form(query, maxrec)]
    if error is not None:
        parts.append(f"<p class='error' id='error'>{escape(error)}</p>")
    else:
        note = f" (truncated at MAXREC = {maxrec})" if overflow else ""
        parts.append(f"<p><span id='nrows'>{table.num_rows}</span> rows{note}. "
                     f"<a id='votable' href='{escape(vot)}'>this result as VOTable</a></p>")
        head = "".join(f"<th>{escape(c)}</th>" for c in table.column_names)
        rows = []
        for r in table.to_pylist():
            rows.append("<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in r.values()) + "</tr>")
        parts.append(f"<table id='result'><tr>{head}</tr>{''.join(rows)}</table>")
    return _page(f"{name}: query", "".join(parts))
