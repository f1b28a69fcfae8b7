"""Integrations with training frameworks: `combinators.integrations.torch` (public as `combinators.torch`)."""
