"""The Legacy Surveys data model as code: columns, bitmasks, constants, the brick grid.

>>> from legacylake.catalogs_schema import model, MASKBITS
>>> model("dr9-tractor")["flux_g"].unit
'nanomaggy'
>>> MASKBITS.mask("BRIGHT,GALAXY")
4098
"""

from legacylake.catalogs_schema import bricks, constants
from legacylake.catalogs_schema.bitmasks import ALLMASK, ANYMASK, BITMASKS, FITBITS, MASKBITS, WISEMASK, Bitmask, UnknownBitError, bitmask
from legacylake.catalogs_schema.columns import MODEL_NAMES, Column, DataModel, all_models, arrow_field, column_info, model
from legacylake.catalogs_schema.fitsfile import NotACatalogError, table_header
from legacylake.catalogs_schema.validate import Detection, Report, detect, validate

__all__ = [
    "ALLMASK", "ANYMASK", "BITMASKS", "FITBITS", "MASKBITS", "WISEMASK", "Bitmask",
    "UnknownBitError", "bitmask", "MODEL_NAMES", "Column", "DataModel", "all_models",
    "arrow_field", "column_info", "model", "NotACatalogError", "table_header", "Detection",
    "Report", "detect", "validate", "bricks", "constants",
]
