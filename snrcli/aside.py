"""Work done on a side thread while the main work goes on.

For jobs that need nothing from the run and spend their time where the GIL is
released (hashing a file, BLAS): they use a core that the model checks, the
session's creation and the data loading leave idle.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


class Aside:
    """``fn(*args, **kwargs)`` on a daemon thread from construction (``start=False``: run by ``result()``
    on the calling thread instead). ``result()`` waits and returns its value or raises its error."""

    def __init__(self, fn: Callable[..., Any], *args: Any, start: bool = True, **kwargs: Any):
        self._call = lambda: fn(*args, **kwargs)
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._run, name="snr-aside", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._error = e

    def result(self) -> Any:
        if self._thread is None:
            self._thread = threading.current_thread()
            self._run()
        elif self._thread is not threading.current_thread():
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
