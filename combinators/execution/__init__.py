"""Interpreters that turn stream descriptions into iterators."""

from combinators.execution.base import Activation, Executor, InProcess, Session, resolve_executor
from combinators.execution.processes import Processes
from combinators.execution.ray import Ray
from combinators.execution.zmq import ZMQ

__all__ = ["Executor", "InProcess", "Processes", "Ray", "ZMQ"]
