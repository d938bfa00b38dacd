"""Output files named on the command line (``--csv``, ``--plot``): checked before any work, written
atomically (a temporary file in the same folder, renamed into place), so a failure leaves nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import UsageError


def check_output_file(path: str, flag: str) -> None:
    """Refuse, before any work, an output file whose folder is missing, not a folder or not writable."""
    p = Path(path)
    parent = p.absolute().parent
    if p.is_dir():
        raise UsageError(f"{flag} {path} is a folder; name a file")
    if not parent.exists():
        raise UsageError(f"{flag} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{flag} {path}: the folder {parent} is not writable")


def write_file(path: str, flag: str, write: Callable[[str], None]) -> None:
    """Call ``write(temporary path)``, then rename the temporary file to ``path``; on any failure the
    temporary file is removed and ``path`` is left as it was."""
    p = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.absolute().parent)
        os.close(fd)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot write it: {e.strerror or e}") from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as e:
        _remove(tmp)
        raise UsageError(f"{flag} {path}: cannot write it: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str, text: str, flag: str) -> None:
    """``write_file`` for UTF-8 text (CSV)."""
    write_file(path, flag, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass
