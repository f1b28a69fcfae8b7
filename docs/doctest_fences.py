"""A Griffe extension for the API reference: doctest examples render as code blocks.

The package's docstrings are prose with ``>>>`` examples (run by pytest as
doctests). Markdown would read ``>>>`` as nested quotes, so each run of
example lines (a ``>>>`` line, its ``...`` continuations and the expected
output up to a blank line) is wrapped in a ``pycon`` fence.
"""

from __future__ import annotations

import griffe


def fence_examples(text: str) -> str:
    """``text`` with every doctest block wrapped in a fenced ``pycon`` code block.

    >>> print(fence_examples("Adds.\\n\\n>>> 1 + 1\\n2\\n\\nDone."))
    Adds.
    <BLANKLINE>
    ```pycon
    >>> 1 + 1
    2
    ```
    <BLANKLINE>
    Done.
    """
    out, inside = [], False
    for line in text.splitlines():
        starts = line.lstrip().startswith(">>>")
        if starts and not inside:
            out.append("```pycon")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest examples of every docstring Griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
