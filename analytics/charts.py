"""The monthly report's chart as a PNG: the one module that imports matplotlib.

matplotlib draws the axes, ticks, legends and labels a reader expects of a chart; doing
that by hand with Pillow would be our own charting code to keep. The Agg backend is pinned
(a worker has no display), and figures are drawn on their own canvas, never through
pyplot's global state, so threads of a worker never share one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from io import BytesIO

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import StrMethodFormatter  # noqa: E402

BLUE, RED, GREY, GREEN = "#417690", "#ba2121", "#9aa5ab", "#2e7d32"


@dataclass(frozen=True)
class ChartDay:
    day: date
    orders_created: int
    orders_completed: int
    orders_cancelled: int
    gross_revenue_cents: int
    refunds_cents: int


def month_chart_png(*, title: str, days: Sequence[ChartDay]) -> bytes:
    """Two panels over the days of a month: orders created / completed / cancelled, and
    gross revenue and refunds in dollars. Returns PNG bytes (no metadata but the size)."""
    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    orders, money = figure.subplots(2, 1, sharex=True)
    numbers = [d.day.day for d in days]
    width = 0.27
    orders.bar([n - width for n in numbers], [d.orders_created for d in days], width,
               color=GREY, label="created")
    orders.bar(numbers, [d.orders_completed for d in days], width, color=BLUE,
               label="completed")
    orders.bar([n + width for n in numbers], [d.orders_cancelled for d in days], width,
               color=RED, label="cancelled")
    orders.set_ylabel("orders")
    orders.yaxis.get_major_locator().set_params(integer=True)
    # Legends above the plots, where no bar can hide under them.
    orders.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=3, frameon=False)
    figure.suptitle(title)
    money.bar(numbers, [d.gross_revenue_cents / 100 for d in days], 0.6, color=GREEN,
              label="gross revenue (before tax)")
    money.plot(numbers, [d.refunds_cents / 100 for d in days], color=RED, marker="o",
               markersize=3, label="refunds")
    money.set_ylabel("CAD")
    money.set_xlabel("day of the month")
    money.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False)
    money.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    money.set_xticks(numbers or [1])
    money.tick_params(axis="x", labelsize=8)
    for axes in (orders, money):
        axes.grid(axis="y", color="#dddddd")
        axes.set_axisbelow(True)
        axes.set_ylim(bottom=0)
    buffer = BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
