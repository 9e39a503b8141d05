"""Server-rendered SVG charts for the console (no JavaScript library, no CDN)."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from models.labels import CHINESE_NAMES, LABELS

# One colour per label, in taxonomy order; readable on white and in print.
COLOURS = ["#c0392b", "#d35400", "#8e44ad", "#2471a3", "#148f77", "#7d6608"]


def flags_per_day_svg(counts: dict[date, dict[str, int]], *, days: list[date], width: int = 900, height: int = 260) -> str:
    """A line per label: items flagged with it on each day."""
    left, right, top, bottom = 40, 260, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1] + [n for per_day in counts.values() for n in per_day.values()])
    step = plot_w / max(1, len(days) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(n: int) -> float:
        return top + plot_h - plot_h * n / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" aria-label="Flags per label per day">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, day in enumerate(days):
        every = max(1, len(days) // 7)
        # Tick every few days, and always the last day unless the previous tick is too close.
        if (i % every == 0 and len(days) - 1 - i >= every / 2) or i == len(days) - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 10}" text-anchor="middle" font-size="11">{day:%m-%d}</text>'
            )
    for index, label in enumerate(LABELS):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(counts.get(day, {}).get(label.value, 0)):.1f}" for i, day in enumerate(days))
        total = sum(counts.get(day, {}).get(label.value, 0) for day in days)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}" '
            f'data-label="{label.value}" data-total="{total}"/>'
        )
        legend_y = top + 14 + index * 18
        parts.append(
            f'<rect x="{left + plot_w + 12}" y="{legend_y - 9}" width="12" height="3" fill="{colour}"/>'
            f'<text x="{left + plot_w + 30}" y="{legend_y - 4}" font-size="12">'
            f"{escape(CHINESE_NAMES[label])} {escape(label.value)} ({total})</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def last_days(today: date, n: int) -> list[date]:
    """The ``n`` days up to and including ``today``."""
    return [today - timedelta(days=n - 1 - i) for i in range(n)]
