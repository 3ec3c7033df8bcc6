"""Export a run's tables to files other tools read: parquet, CSV, JSON Lines."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slmscope.errors import ConfigError
from slmscope.report.escaping import spreadsheet_safe

EXPORT_FORMATS = ("parquet", "csv", "jsonl")


def export_table(frame: pd.DataFrame, path: Path, format: str) -> None:
    """One table to one file, written beside and renamed so a failure leaves no half file."""
    partial = path.with_name(path.name + ".partial")
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401  (pandas needs it for parquet; the `parquet` extra)
        except ImportError as err:
            raise ConfigError(
                "parquet needs pyarrow: pip install 'slmscope[parquet]' (or use --format csv)"
            ) from err
        frame.to_parquet(partial, index=False)
    elif format == "csv":
        spreadsheet_safe(frame).to_csv(partial, index=False)  # no cell runs as a formula
    else:
        frame.to_json(partial, orient="records", lines=True, force_ascii=False)
    partial.replace(path)
