"""DuckDB catalog: schema + migrations, lineage, overlap, erasure and scan history."""
from __future__ import annotations

from provaudit.catalog.store import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
