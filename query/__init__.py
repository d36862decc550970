"""legacylake.query: DuckDB SQL over a HATS lake, the SQL function library, pruned spatial search.

>>> from legacylake.query import connect, query, cone_search
>>> con = connect("lake")                                 # view per catalog + <catalog>_derived
>>> con.sql("SELECT count(*) FROM dr9 WHERE no_maskbits(maskbits, 'BRIGHT,GALAXY,CLUSTER')")
>>> query(con, "SELECT * FROM cone('dr9', 150.1, 2.2, 0.01)", output="astropy")
>>> cone_search("lake", 150.1, 2.2, 0.01, catalog="dr9", columns=["ra", "dec", "flux_r"])
"""

from legacylake.query.connect import Catalog, catalogs, connect, open_catalog, to_astropy
from legacylake.query.macros import FUNCTIONS
from legacylake.query.run import query
from legacylake.query.spatial import Region, box_search, cone_search, plan, polygon_search, search

__all__ = [
    "Catalog", "catalogs", "connect", "open_catalog", "to_astropy", "FUNCTIONS", "query", "Region",
    "box_search", "cone_search", "plan", "polygon_search", "search",
]
from legacylake.query.xmatch import register_xmatch, xmatch  # noqa: E402  (crossmatch; legacylake.query.xmatch(...) is the function)
