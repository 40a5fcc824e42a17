"""A Parquet file written table by table (the final records of a scan, local or on Ray workers)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Self


class ParquetSink:
    """Open ``dest`` at the first table (zstd level 1); later tables are cast to the first's schema.

    Use as a context manager; ``written`` says whether any table came (no file is created otherwise)."""

    def __init__(self, dest: str | Path) -> None:
        self.dest = dest
        self.writer: Any = None
        self.stream: Any = None  # the output stream of a URI ``dest`` (provaudit.io.fs)

    @property
    def written(self) -> bool:
        return self.writer is not None

    def write(self, table: Any) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            from provaudit.io.fs import is_uri, open_output

            self.stream = open_output(self.dest) if is_uri(self.dest) else None
            self.writer = pq.ParquetWriter(self.dest if self.stream is None else self.stream, table.schema,
                                           compression="zstd", compression_level=1)
        elif table.schema != self.writer.schema:
            table = table.cast(self.writer.schema)
        self.writer.write_table(table)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.stream is not None:
            self.stream.close()
