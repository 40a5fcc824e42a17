"""Commands of the checkpoints area (filled in by that area)."""
from __future__ import annotations

COMMANDS: list = []
