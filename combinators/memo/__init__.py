"""Memoization of pure functions: keymaps, archives, cache policies, metrics."""

__all__: list[str] = []
