"""Execution engines for the per-batch scan stages.

Both run :func:`provaudit.stage.process_batch` over record batches and yield the processed
batches in input order, so the finalize step (duplicate groups, summary, catalog write) is the
same whichever engine ran the batches:

- :func:`provaudit.engine.local.run_pool`: a local process pool (``--workers N``).
- :func:`provaudit.engine.ray_engine.run_ray`: Ray Data ``map_batches`` on a local or remote
  Ray cluster (``--engine ray``; ``RAY_ADDRESS`` selects the cluster).
"""
from __future__ import annotations

__all__ = ["local", "ray_engine"]
