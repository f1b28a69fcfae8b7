"""combinators: immutable, reproducible data streams and memoized pure functions."""

from combinators import errors, memo
from combinators.errors import *  # noqa: F403
from combinators.memo import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [*errors.__all__, *memo.__all__]
