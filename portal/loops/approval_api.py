"""JSON API of approvals: list and act (/api/v1/approvals)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
