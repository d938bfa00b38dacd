"""Errors a user can fix, each with the exit code that docs/troubleshooting.md documents.

The CLI turns these into one line on stderr; the core never calls ``sys.exit``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130     # Ctrl-C (SIGINT)
EXIT_BROKEN_PIPE = 141     # stdout closed before everything was printed (like a shell's SIGPIPE status)
EXIT_TERMINATED = 143      # SIGTERM


class SnrError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` says how the CLI ends."""

    exit_code = EXIT_BAD_INPUT


class UsageError(SnrError):
    """Options or arguments that do not make sense together (exit 2)."""

    exit_code = EXIT_USAGE


class ModelError(SnrError):
    """The model cannot be read, or has nothing to analyse (exit 3)."""


class NoLayerError(ModelError):
    """No supported layer was found (exit 3)."""


class DataError(SnrError):
    """The data cannot be read or does not fit the model (exit 3)."""


class RuntimeFailure(SnrError):
    """onnxruntime failed while running the model (exit 3)."""


class ReportError(SnrError):
    """A report file cannot be read or has the wrong schema (exit 2: the user named it)."""

    exit_code = EXIT_USAGE
