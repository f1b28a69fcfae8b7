"""Draw docs/guide/working-set.svg: how a mix's working set evolves, from a real seeded run.

Run ``python docs/working_set.py`` from the repository root to regenerate the
picture; tests/test_docs.py checks that the committed file is what it draws.
"""

from __future__ import annotations

import sys
from pathlib import Path

import combinators as c

WEIGHTS = (1, 2, 3, 1, 2, 3)
N_ACTIVE, RATE, SEED, N_ITEMS, ROWS_PER_SOURCE = 3, 4, 0, 48, 6
OUTPUT = Path(__file__).parent / "guide" / "working-set.svg"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def tagged_rows(source: int, n: int, rng):
    """A source whose items say which source and which activation (a random tag) made them."""
    tag = int(rng.integers(1 << 30))
    for _ in range(n):
        yield source, tag


def sample() -> list[tuple[int, int]]:
    """The first N_ITEMS items of the pictured mix: (source, activation tag)."""
    sources = [c.stream(tagged_rows, i, ROWS_PER_SOURCE) for i in range(len(WEIGHTS))]
    mixed = c.mix(*sources, weights=WEIGHTS, n_active=N_ACTIVE, rate=RATE)
    return list(c.iterate(mixed.take(N_ITEMS), seed=SEED))


def render() -> str:
    """The SVG text: one row per source, one bar per activation, one dot per item."""
    items = sample()
    left, top, dx, dy = 150, 40, 14, 30
    width, height = left + dx * N_ITEMS + 20, top + dy * len(WEIGHTS) + 50
    spans: dict[tuple[int, int], list[int]] = {}
    for position, key in enumerate(items):
        spans.setdefault(key, []).append(position)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="20">mix({len(WEIGHTS)} streams, weights={WEIGHTS}, n_active={N_ACTIVE}, rate={RATE}), seed {SEED}</text>',
    ]
    for source, weight in enumerate(WEIGHTS):
        y = top + dy * source + dy / 2
        parts.append(f'<text x="10" y="{y + 4}">stream {source} (w={weight})</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + dx * N_ITEMS}" y2="{y}" stroke="#ddd"/>')
    for number, ((source, _), positions) in enumerate(spans.items()):
        color, y = COLORS[number % len(COLORS)], top + dy * source + dy / 2
        x0, x1 = left + dx * positions[0], left + dx * positions[-1]
        parts.append(f'<rect x="{x0 - 5}" y="{y - 9}" width="{x1 - x0 + 10}" height="18" rx="6" fill="{color}" fill-opacity="0.25"/>')
        parts.extend(f'<circle cx="{left + dx * p}" cy="{y}" r="4" fill="{color}"/>' for p in positions)
    axis = top + dy * len(WEIGHTS) + 20
    parts.append(f'<text x="{left}" y="{axis}">item 0</text>')
    parts.append(f'<text x="{left + dx * (N_ITEMS - 1)}" y="{axis}" text-anchor="end">item {N_ITEMS - 1}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
