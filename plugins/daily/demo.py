"""Demo data of daily management (being built)."""

from __future__ import annotations


def create_demo_daily() -> None:
    """A month of attendance, meetings with open resolutions, claims over and under limits."""
