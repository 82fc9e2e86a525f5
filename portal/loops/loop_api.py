"""JSON API of loop items: list, read, raise and act (/api/v1/loops)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
