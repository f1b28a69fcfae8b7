"""Interpreters that turn stream descriptions into iterators."""

from combinators.execution.base import Activation, Executor, InProcess, Session, resolve_executor
from combinators.execution.remote.processes import Processes
from combinators.execution.remote.ray import Ray
from combinators.execution.remote.zmq import ZMQ

__all__ = ["Executor", "InProcess", "Processes", "Ray", "ZMQ"]
