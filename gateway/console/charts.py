"""Server-side SVG charts: no charting library, no script, nothing fetched. Every text is XML-escaped."""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 30, 36
PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c")
LEAK = "#dc2626"


def _frame(title: str, body: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label={quoteattr(title)} font-family="system-ui, sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="18" font-size="13" font-weight="600" fill="#111827">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def _nice_max(value: float, *, counts: bool = True) -> float:
    """The top of a 4-step axis: each step a round number (a whole one for counts)."""
    if value <= 0:
        return 4.0 if counts else 1.0
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step: float = next(f * magnitude for f in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if f * magnitude >= raw)
    return 4.0 * (max(1, math.ceil(step)) if counts else step)


def bars(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float]],
    colors: dict[str, str] | None = None,
    empty: str = "no data in this period",
) -> str:
    """Stacked bars, one per bucket, one colour per series, with a legend on the right."""
    n = len(x_labels)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(values[i] for values in series.values()) for i in range(n)]
    top = _nice_max(max(totals, default=0))
    out = []
    for k in range(5):  # grid and y axis
        y = TOP + plot_h - plot_h * k / 4
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">{top * k / 4:g}</text>')
    slot = plot_w / max(n, 1)
    for i in range(n):
        base = 0.0
        x = LEFT + i * slot + slot * 0.15
        for j, (name, values) in enumerate(series.items()):
            if not values[i]:
                continue
            h = plot_h * values[i] / top
            y = TOP + plot_h - plot_h * base / top - h
            color = (colors or {}).get(name, PALETTE[j % len(PALETTE)])
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(f'{x_labels[i]} · {name}: {values[i]:g}')}</title></rect>"
            )
            base += values[i]
    step = max(1, n // 6)
    for i in range(0, n, step):
        x = LEFT + i * slot + slot / 2
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 14}" text-anchor="middle" fill="#6b7280">{escape(x_labels[i])}</text>'
        )
    for j, name in enumerate(series):
        color = (colors or {}).get(name, PALETTE[j % len(PALETTE)])
        y = TOP + 4 + j * 16
        out.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{y}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{WIDTH - RIGHT + 28}" y="{y + 9}" fill="#374151">{escape(name)}</text>')
    if not any(totals):
        centre = f'x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle"'
        out.append(f'<text {centre} fill="#9ca3af">{escape(empty)}</text>')
    return _frame(title, out)


def meters(title: str, rows: Sequence[tuple[str, float, float]], unit: str = "", *, budget: bool = True) -> str:
    """One horizontal bar per row: value against its limit; a budget turns red once 80% is spent."""
    height = TOP + 26 * max(len(rows), 1) + 12
    name_w = 110
    plot_w = WIDTH - LEFT - name_w - 110
    out = []
    for i, (name, value, limit) in enumerate(rows):
        y = TOP + 8 + i * 26
        share = min(1.0, value / limit) if limit > 0 else 0.0
        color = LEAK if budget and share >= 0.8 else PALETTE[0]
        bar_x = LEFT + name_w
        out.append(f'<text x="{bar_x - 8}" y="{y + 12}" text-anchor="end" fill="#374151">{escape(name)}</text>')
        out.append(f'<rect x="{bar_x}" y="{y}" width="{plot_w:.1f}" height="16" fill="#f3f4f6"/>')
        out.append(
            f'<rect x="{bar_x}" y="{y}" width="{plot_w * share:.1f}" height="16" fill="{color}">'
            f"<title>{escape(f'{name}: {value:g} of {limit:g}{unit}')}</title></rect>"
        )
        label = f"{value:g} / {limit:g}{unit}" if budget else f"{value:g}{unit}"
        out.append(f'<text x="{bar_x + plot_w + 8}" y="{y + 12}" fill="#374151">{escape(label)}</text>')
    if not rows:
        out.append(f'<text x="{LEFT}" y="{TOP + 16}" fill="#9ca3af">no tenants</text>')
    return _frame(title, out, height)


def percentile_bars(title: str, stats: dict[str, dict[str, float | int | None]], unit: str = " ms") -> str:
    """p50 / p90 / p99 of each named distribution, as grouped horizontal bars."""
    names = [n for n, s in stats.items() if s.get("count")]
    rows = [(f"{n} {p}", float(stats[n][p] or 0.0)) for n in names for p in ("p50", "p90", "p99")]
    top = _nice_max(max((v for _, v in rows), default=0.0), counts=False)
    return meters(title, [(name, value, top) for name, value in rows], unit, budget=False)
