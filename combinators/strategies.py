"""Hypothesis strategies for stream plans: ``combinators.strategies`` is `combinators.testing.strategies`.

The module itself, not a copy of its names: ``combinators.strategies is
combinators.testing.strategies``.
"""

import sys

from combinators.testing import strategies as _strategies

sys.modules[__name__] = _strategies
