"""Commands of the scan area (filled in by that area)."""
from __future__ import annotations

COMMANDS: list = []
