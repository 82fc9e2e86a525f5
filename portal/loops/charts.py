"""The loop metrics as pygal SVG charts, served as images (P1.3.4).

The strict CSP forbids inline SVG in a page (pygal writes a ``<style>`` and a
``<script>`` into it), so a chart is its own ``image/svg+xml`` response shown with
``<img>``. An image document runs no script and loads nothing, so the chart must be
self-contained: pygal's CSS is inlined from its package files, its tooltip script (a
CDN URL by default) is switched off, and the config ``<script>``, the comments naming
pygal's web site and the one ``style`` attribute it writes are removed, leaving no URL
but the SVG namespace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

import pygal
from flask import Response
from flask_babel import gettext as _
from pygal.style import Style

from ..money import format_money, yuan
from .metrics import MetricRow

CHART_WIDTH = 640
CHART_HEIGHT = 360
MAX_BARS = 20  # a bar chart of more groups cannot be read; the table has them all

STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#212529",
    foreground_strong="#212529",
    foreground_subtle="#6c757d",
    opacity=".85",
    opacity_hover=".95",
    colors=("#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1"),
    # CJK names and labels need a CJK font; the first one installed wins.
    font_family='system-ui, "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif',
    title_font_size=18,
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    value_font_size=13,
)


def chart_config(title: str, **options: Any) -> pygal.Config:
    """A pygal configuration that is safe for the portal: no script from a CDN, pygal's own
    CSS inlined, the portal's colours; every chart of the core and the plugins starts here."""
    config = pygal.Config()
    config.js = []  # the default is a script on a CDN
    config.css = ["file://style.css", "file://graph.css"]  # pygal's own files, inlined
    config.disable_xml_declaration = True
    config.style = STYLE
    config.width = CHART_WIDTH
    config.height = CHART_HEIGHT
    config.title = title
    config.no_data_text = _("No data for this period")
    config.legend_at_bottom = True
    config.truncate_label = 18
    config.truncate_legend = 40
    config.x_label_rotation = 25
    config.tooltip_fancy_mode = False
    for key, value in options.items():
        setattr(config, key, value)
    return config


def money_label(value: float | None) -> str:
    """A chart's value formatter for amounts plotted in yuan: 1,234.50 as pages show it."""
    return "" if value is None else format_money(round(value * 100))


def yuan_float(cents: int | None) -> float:
    """Whole fen as the float yuan pygal plots (None is 0)."""
    return float(yuan(cents))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} %"


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _count_axis(*series: list[int]) -> dict[str, Any]:
    """Whole-number ticks for a count axis (pygal would label 0.1 steps of 0..1)."""
    highest = max([1, *(value for values in series for value in values)])
    step = max(1, math.ceil(highest / 6))
    top = step * math.ceil(highest / step)
    return {"range": (0, top), "y_labels": list(range(0, top + 1, step))}


def _top(rows: list[MetricRow], group: str) -> list[MetricRow]:
    if group == "team" or len(rows) <= MAX_BARS:
        return rows[:MAX_BARS]
    keep = {id(row) for row in sorted(rows, key=lambda r: -r.raised)[:MAX_BARS]}
    return [row for row in rows if id(row) in keep]


def rates_chart(rows: list[MetricRow], group: str) -> pygal.Graph:
    """Closure and reopen rate of each group, in per cent."""
    shown = _top(rows, group)
    chart = pygal.Bar(
        chart_config(_("Closure and reopen rate"), range=(0, 100), value_formatter=_percent)
    )
    chart.x_labels = [row.label for row in shown]
    chart.add(_("Closure rate"), [_pct(row.closure_rate) for row in shown])
    chart.add(_("Reopen rate"), [_pct(row.reopen_rate) for row in shown])
    return chart


def overdue_chart(rows: list[MetricRow], group: str) -> pygal.Graph:
    """Open items past their due date now, per group."""
    shown = _top(rows, group)
    values = [row.overdue for row in shown]
    chart = pygal.Bar(
        chart_config(_("Overdue now"), value_formatter=lambda v: f"{v:.0f}", **_count_axis(values))
    )
    chart.x_labels = [row.label for row in shown]
    chart.add(_("Overdue"), values)
    return chart


def median_chart(rows: list[MetricRow], group: str) -> pygal.Graph:
    """Median days from raising to done, per group."""
    shown = _top(rows, group)
    chart = pygal.Bar(chart_config(_("Median days to close"), value_formatter=_days))
    chart.x_labels = [row.label for row in shown]
    chart.add(_("Median days"), [row.median_days for row in shown])
    return chart


def trend_chart(rows: list[MetricRow], group: str) -> pygal.Graph:
    """Closure and reopen rate of each bucket's cohort over time."""
    chart = pygal.Line(
        chart_config(
            _("Closure and reopen rate over time"),
            range=(0, 100),
            value_formatter=_percent,
            show_minor_x_labels=len(rows) <= 16,
            x_labels_major_every=max(1, len(rows) // 8),
        )
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Closure rate"), [_pct(row.closure_rate) for row in rows])
    chart.add(_("Reopen rate"), [_pct(row.reopen_rate) for row in rows])
    return chart


def volume_chart(rows: list[MetricRow], group: str) -> pygal.Graph:
    """Raised, closed and still-overdue items of each bucket."""
    raised = [row.raised for row in rows]
    closed = [row.closed for row in rows]
    overdue = [row.overdue for row in rows]
    chart = pygal.Bar(
        chart_config(
            _("Raised, closed and overdue over time"),
            value_formatter=lambda v: f"{v:.0f}",
            show_minor_x_labels=len(rows) <= 16,
            x_labels_major_every=max(1, len(rows) // 8),
            **_count_axis(raised, closed, overdue),
        )
    )
    chart.x_labels = [row.label for row in rows]
    chart.add(_("Raised"), raised)
    chart.add(_("Closed"), closed)
    chart.add(_("Overdue now"), overdue)
    return chart


# name -> (builder, whether it draws the time series rather than the chosen grouping)
CHARTS: dict[str, tuple[Callable[[list[MetricRow], str], pygal.Graph], bool]] = {
    "rates": (rates_chart, False),
    "overdue": (overdue_chart, False),
    "median": (median_chart, False),
    "trend": (trend_chart, True),
    "volume": (volume_chart, True),
}


def _strip(root: ElementTree.Element) -> None:
    """Remove what an image cannot use and what names outside addresses: scripts,
    comments, and ``style`` attributes (turned into presentation attributes)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag is ElementTree.Comment or str(child.tag).endswith("script"):
                parent.remove(child)
        style = parent.attrib.pop("style", None)
        if style:
            for declaration in style.split(";"):
                name, _sep, value = declaration.partition(":")
                if name.strip() and value.strip():
                    parent.set(name.strip(), value.strip())


def render_svg(chart: pygal.Graph) -> bytes:
    """The chart as a self-contained SVG document."""
    root = chart.render_tree()
    _strip(root)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def svg_response(svg: bytes) -> Response:
    """A chart as its own image response: never cached (it shows the viewer's data in
    the viewer's language), so it varies on the session cookie and the language."""
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "private, no-store"
    response.vary.add("Cookie")
    response.vary.add("Accept-Language")
    return response


def chart_svg(name: str, rows: list[MetricRow], group: str) -> bytes:
    """Render the chart called ``name`` (a key of CHARTS) from metric rows."""
    builder, _time_series = CHARTS[name]
    return render_svg(builder(rows, group))
