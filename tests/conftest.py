"""Fixtures shared by the example tests."""

import signal

import pytest


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt, even where the runner started with SIGINT ignored.

    A shell that starts a job in the background (as CI may) hands it SIGINT
    set to SIG_IGN; the tests of interrupt handling need Python's handler.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
