"""Ctrl-C held back while code that cannot be interrupted cleanly runs.

pydantic builds a model's validator lazily, in Rust, on first use; a KeyboardInterrupt raised
inside it comes back as a `SchemaError` ("... KeyboardInterrupt"), which is neither an
interrupt nor the user's fault. `deferred_interrupt` holds SIGINT for such a section (a
fraction of a second) and raises KeyboardInterrupt once it ends, so Ctrl-C still exits 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # a command's own handler (train's cooperative stop) or not the main thread
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
