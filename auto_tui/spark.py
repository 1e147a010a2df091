"""The details view's sparkline: Textual's, but measured from zero and blank below two points.

Textual's ``Sparkline`` stretches its bars between the lowest and the highest point, so memory
going from 3.1M to 3.3M reads as a swing from empty to full, and it draws a single point as a
full bar. Here a bar is its point's share of the highest one, and fewer than two points draw
nothing (the value beside it says there are no samples yet)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.widgets import Sparkline

BARS = "▁▂▃▄▅▆▇█"


def bars(points: Sequence[float], width: int) -> list[tuple[str, float]]:
    """``width`` bars over ``points`` (each the highest point of its share; fewer points than
    bars are stretched), as ``(bar, fraction of the highest point)``; none below two points."""
    if len(points) < 2 or width <= 0:
        return []
    top = max(points) or 1.0  # all zero: a flat line at the bottom
    drawn = []
    for column in range(width):
        start = column * len(points) // width
        share = points[start:(column + 1) * len(points) // width] or points[start:start + 1]
        fraction = max(0.0, max(share) / top)
        drawn.append((BARS[min(len(BARS) - 1, int(fraction * len(BARS)))], fraction))
    return drawn


class ZeroSparkline(Sparkline):
    """A sparkline whose bars start at zero (the colours are Sparkline's)."""

    def render(self) -> RenderResult:
        _, base = self.background_colors
        low = base + self.get_component_styles("sparkline--min-color").color
        high = base + self.get_component_styles("sparkline--max-color").color
        text = Text(no_wrap=True, overflow="crop")
        for bar, fraction in bars(list(self.data or []), self.size.width):
            text.append(bar, Style(color=low.blend(high, fraction).rich_color))
        return text
