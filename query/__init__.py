"""legacylake.query: DuckDB SQL over a HATS lake, the SQL function library, pruned spatial search.

>>> from legacylake.query import connect, query, cone_search
>>> con = connect("lake")                                 # view per catalog + <catalog>_derived
>>> con.sql("SELECT count(*) FROM dr9 WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER')")
>>> query(con, "SELECT * FROM cone('dr9', 150.1, 2.2, 0.01)", output="astropy")
>>> cone_search("lake", 150.1, 2.2, 0.01, catalog="dr9", columns=["ra", "dec", "flux_r"])
>>> units("lake", "dr9")                                 # {"ra": "deg", "flux_r": "nanomaggy", ...}
"""

from legacylake.lazy import attach

#: Public names, imported on first use (keeps the CLI fast).
attach(__name__, {
    "Catalog": "legacylake.query.lake:Catalog",
    "catalogs": "legacylake.query.lake:catalogs",
    "open_catalog": "legacylake.query.lake:open_catalog",
    "connect": "legacylake.query.sql.connect:connect",
    "to_astropy": "legacylake.query.sql.connect:to_astropy",
    "FUNCTIONS": "legacylake.query.sql.macros:FUNCTIONS",
    "query": "legacylake.query.run:query",
    "units": "legacylake.query.units:units",
    "Region": "legacylake.query.spatial.search:Region",
    "box_search": "legacylake.query.spatial.search:box_search",
    "cone_search": "legacylake.query.spatial.search:cone_search",
    "plan": "legacylake.query.spatial.search:plan",
    "polygon_search": "legacylake.query.spatial.search:polygon_search",
    "search": "legacylake.query.spatial.search:search",
    "xmatch": "legacylake.query.crossmatch.core:xmatch",
    "register_xmatch": "legacylake.query.crossmatch.sqlfuncs:register_xmatch",
})
