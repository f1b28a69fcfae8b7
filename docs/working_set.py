"""Draw docs/guide/working-set.svg: how a mix's working set evolves, from a real seeded run.

Each activation is drawn as a bar from its first item to its last, in a
working-set slot reconstructed from the items (the lowest slot free over that
span), so no more than ``n_active`` slots are ever needed.

Run ``python docs/working_set.py`` from the repository root to regenerate the
picture; tests/test_docs.py checks that the committed file is what it draws.
"""

from __future__ import annotations

import sys
from pathlib import Path

import combinators as c

WEIGHTS = (1, 2, 3, 1, 2, 3)
N_ACTIVE, RATE, SEED, N_ITEMS, ROWS_PER_SOURCE = 3, 4, 5, 48, 6
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


def activations(items: list[tuple[int, int]]) -> list[tuple[int, list[int]]]:
    """Each activation as (source, positions of its items), in order of first item."""
    spans: dict[tuple[int, int], list[int]] = {}
    for position, key in enumerate(items):
        spans.setdefault(key, []).append(position)
    return [(source, positions) for (source, _), positions in spans.items()]


def slots(spans: list[tuple[int, list[int]]]) -> list[int]:
    """A working-set slot per activation: the lowest one free from its first item to its last."""
    ends: list[int] = []  # per slot: the position of its current activation's last item
    chosen = []
    for _, positions in spans:
        free = next((slot for slot, end in enumerate(ends) if end < positions[0]), None)
        if free is None:
            free = len(ends)
            ends.append(positions[-1])
        ends[free] = positions[-1]
        chosen.append(free)
    return chosen


def caption_facts(spans: list[tuple[int, list[int]]]) -> dict[str, object]:
    """What the guide's caption says of the picture: the streams absent, and the first stream that holds two
    slots at once with the item where its second activation starts (tests/test_docs.py checks the caption)."""
    present = {source for source, _ in spans}
    doubles = [(source, later[0]) for k, (source, positions) in enumerate(spans)
               for other, later in spans[k + 1:] if other == source and later[0] <= positions[-1]]
    first_double = min(doubles, key=lambda double: double[1], default=None)
    return {"absent": sorted(set(range(len(WEIGHTS))) - present), "double": first_double}


def render() -> str:
    """The SVG text: one row per working-set slot, one bar per activation, one dot per item."""
    spans = activations(sample())
    lanes = slots(spans)
    left, top, dx, dy = 90, 40, 14, 34
    n_lanes = max(lanes) + 1
    width, height = left + dx * N_ITEMS + 20, top + dy * n_lanes + 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20">mix({len(WEIGHTS)} streams, weights={WEIGHTS}, n_active={N_ACTIVE}, rate={RATE}), '
        f'seed {SEED}: the first {N_ITEMS} items</text>',
    ]
    for lane in range(n_lanes):
        y = top + dy * lane + dy / 2
        parts.append(f'<text x="10" y="{y + 4}">slot {lane + 1}</text>')
        parts.append(f'<line x1="{left}" y1="{y}" x2="{left + dx * N_ITEMS}" y2="{y}" stroke="#ddd"/>')
    for (source, positions), lane in zip(spans, lanes):
        color, y = COLORS[source % len(COLORS)], top + dy * lane + dy / 2
        x0, x1 = left + dx * positions[0], left + dx * positions[-1]
        parts.append(f'<rect x="{x0 - 6}" y="{y - 11}" width="{x1 - x0 + 12}" height="22" rx="7" '
                     f'fill="{color}" fill-opacity="0.2" stroke="{color}"/>')
        parts.extend(f'<circle cx="{left + dx * p}" cy="{y}" r="4" fill="{color}"/>' for p in positions)
        parts.append(f'<text x="{x0 - 4}" y="{y - 14}" font-size="10" fill="{color}">s{source}</text>')
    axis = top + dy * n_lanes + 16
    parts.append(f'<text x="{left}" y="{axis}">item 0</text>')
    parts.append(f'<text x="{left + dx * (N_ITEMS - 1)}" y="{axis}" text-anchor="end">item {N_ITEMS - 1}</text>')
    legend = "  ".join(f"s{i}: stream {i} (weight {w})" for i, w in enumerate(WEIGHTS))
    parts.append(f'<text x="10" y="{axis + 24}" font-size="11">{legend}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
