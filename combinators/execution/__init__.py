"""Interpreters that turn stream descriptions into iterators."""

from combinators.execution.base import Activation, Executor, InProcess, Session, resolve_executor

__all__ = ["Executor", "InProcess"]
