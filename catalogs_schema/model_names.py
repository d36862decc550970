"""The data models' names, with no import behind them (the CLI's help text needs them)."""

#: Data model names, "<release>-<kind>".
MODEL_NAMES: tuple[str, ...] = (
    "dr4-tractor", "dr8-tractor", "dr8-sweep", "dr9-tractor", "dr9-sweep",
    "dr10-tractor", "dr10-sweep",
)
