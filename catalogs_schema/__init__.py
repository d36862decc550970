"""The Legacy Surveys data model as code: columns, bitmasks, constants, the brick grid.

>>> from legacylake.catalogs_schema import model, MASKBITS
>>> model("dr9-tractor")["flux_g"].unit
'nanomaggy'
>>> MASKBITS.mask("BRIGHT,GALAXY")
4098
"""

from legacylake.lazy import attach

#: Public names, imported on first use (keeps the CLI fast).
attach(__name__, {
    "bricks": "legacylake.catalogs_schema.bricks",
    "constants": "legacylake.catalogs_schema.constants",
    "ALLMASK": "legacylake.catalogs_schema.bitmasks:ALLMASK",
    "ANYMASK": "legacylake.catalogs_schema.bitmasks:ANYMASK",
    "BITMASKS": "legacylake.catalogs_schema.bitmasks:BITMASKS",
    "FITBITS": "legacylake.catalogs_schema.bitmasks:FITBITS",
    "MASKBITS": "legacylake.catalogs_schema.bitmasks:MASKBITS",
    "WISEMASK": "legacylake.catalogs_schema.bitmasks:WISEMASK",
    "Bitmask": "legacylake.catalogs_schema.bitmasks:Bitmask",
    "UnknownBitError": "legacylake.catalogs_schema.bitmasks:UnknownBitError",
    "bitmask": "legacylake.catalogs_schema.bitmasks:bitmask",
    "MODEL_NAMES": "legacylake.catalogs_schema.columns:MODEL_NAMES",
    "Column": "legacylake.catalogs_schema.columns:Column",
    "DataModel": "legacylake.catalogs_schema.columns:DataModel",
    "all_models": "legacylake.catalogs_schema.columns:all_models",
    "arrow_field": "legacylake.catalogs_schema.columns:arrow_field",
    "column_info": "legacylake.catalogs_schema.columns:column_info",
    "model": "legacylake.catalogs_schema.columns:model",
    "NotACatalogError": "legacylake.catalogs_schema.fitsfile:NotACatalogError",
    "table_header": "legacylake.catalogs_schema.fitsfile:table_header",
    "Detection": "legacylake.catalogs_schema.validate:Detection",
    "Report": "legacylake.catalogs_schema.validate:Report",
    "detect": "legacylake.catalogs_schema.validate:detect",
    "validate": "legacylake.catalogs_schema.validate:validate",
})
