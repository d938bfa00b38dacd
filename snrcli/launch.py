"""The ``snr`` console command: handles Ctrl-C and SIGTERM from its first line, before click, numpy
or onnxruntime are imported, so an interruption at any moment once snr's code runs ends in one
line and exit 130/143 (one during Python's own start-up, before that, is Python's)."""

import sys

try:
    from . import signals
    signals.install()   # first of all: this module is imported only to run the command
except KeyboardInterrupt:
    sys.stderr.write("interrupted: stopped before finishing; nothing was written\n")
    sys.exit(130)


def main() -> None:
    from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED

    signals.install()
    try:
        from .cli.main import main as group
        group.main(prog_name="snr")     # ends by SystemExit; SnrGroup handles interruptions once it runs
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - only an interruption is handled here
        signum = signals.interrupted_by()
        if signum is None and not isinstance(e, (KeyboardInterrupt, signals.Terminated)):
            raise
        signals.finishing()
        terminated = signum == signals.signal.SIGTERM or isinstance(e, signals.Terminated)
        sys.stderr.write(("terminated" if terminated else "interrupted") +
                         ": stopped before finishing; nothing was written\n")
        sys.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
