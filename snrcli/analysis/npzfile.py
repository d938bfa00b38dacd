"""Opening ``.npy`` and ``.npz`` files as untrusted input (docs/metrics.md, How the model is run): read with
``allow_pickle=False``, and never more than the file really holds.

Before anything is opened the path must be a regular file (a FIFO would block, ``/dev/zero``
never ends). Each array header is checked against the bytes behind it: a shape that needs more
bytes than the file (or the zip member) holds, a member whose declared size deflate could not
produce from its compressed bytes, an encrypted member or an unknown compression method is a
``DataError``, so memory stays bounded by what the file can give. Once rows of a memory-mapped
array are read, ``release_rows`` hands their pages back to the OS.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

# deflate's largest expansion: a 258-byte match costs at least 2 bits, so 1032 bytes out per byte in
MAX_DEFLATE_RATIO = 1032
_KINDS = {stat.S_IFIFO: "FIFO (named pipe)", stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFSOCK: "socket"}


def check_regular_file(path: Path, what: str = "data file") -> None:
    """Refuse, before opening it, anything but a regular file (symbolic links followed)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{what} {path} is a folder, not an .npz or .npy file")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "special file")
        raise DataError(f"{what} {path} is a {kind}, not a regular file; snr reads data only from "
                        ".npz or .npy files")


@dataclass
class Header:
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int         # where the array's bytes start, counted from the start of the .npy stream

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_header(f, where: str, size: int) -> Header:
    """The .npy header at the start of ``f`` (``size`` bytes in all), checked against ``size``."""
    try:
        version = np.lib.format.read_magic(f)
    except EOFError:
        raise DataError(f"cannot read {where}: it is empty or truncated") from None
    except ValueError:
        raise DataError(f"cannot read {where}: it is not a NumPy array (no .npy header); is the file "
                        "truncated or in another format?") from None
    try:
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, EOFError, SyntaxError, TypeError) as e:
        raise DataError(f"cannot read {where}: malformed .npy header ({' '.join(str(e).split())[:120]})") from e
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise _pickled(where)
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise DataError(f"cannot read {where}: malformed .npy header (shape {shape})")
    h = Header(shape, bool(fortran), dtype, f.tell())
    if h.offset + h.nbytes > size:
        raise DataError(f"cannot read {where}: its header declares shape {shape} of {dtype} ({h.nbytes} bytes) "
                        f"but {max(0, size - h.offset)} bytes follow; is the file truncated or corrupt?")
    return h


def _pickled(where: str) -> DataError:
    return DataError(f"{where} holds object (pickled) arrays, which are refused for safety; "
                     "save plain numeric arrays")


class NpzMember:
    """One array of an .npz file, read lazily: memory-mapped when stored uncompressed, else streamed.

    Supports ``len``, ``shape``, ``dtype``, ``ndim`` and slicing along axis 0; reading
    batches in order never holds more than one batch in memory. A compressed array stored in
    Fortran order cannot be streamed by rows: it is read whole, once, on first use (``note`` says so).
    """

    def __init__(self, path: Path, info: zipfile.ZipInfo, file_size: int):
        self.path, self.member = path, info.filename
        where = f"array {self.member[:-4]!r} of {path}"
        if info.flag_bits & 0x1:
            raise DataError(f"{where} is encrypted; save the data unencrypted (np.savez)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DataError(f"{where} is compressed with zip method {info.compress_type}; snr reads stored or "
                            "deflated arrays (np.savez, np.savez_compressed)")
        if info.header_offset + info.compress_size > file_size:
            raise DataError(f"cannot read {where}: it runs past the end of the file; is the file truncated?")
        limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
            else info.compress_size * MAX_DEFLATE_RATIO + 64
        if info.file_size > limit:
            raise DataError(f"cannot read {where}: it claims {info.file_size} bytes from {info.compress_size} "
                            "stored bytes, more than the format can give; the file is corrupt")
        with zipfile.ZipFile(path) as z, z.open(info) as f:
            h = read_header(f, where, info.file_size)
        self.shape, self.dtype = h.shape, h.dtype
        self._fortran = h.fortran and len(h.shape) > 1   # (a 1-D array is the same in either order)
        self._row = math.prod(self.shape[1:]) * self.dtype.itemsize
        self._header = h.offset
        self._mmap = None
        self._whole = None
        self.note = None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as raw:
                raw.seek(info.header_offset)
                local = raw.read(30)
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            offset = info.header_offset + 30 + name_len + extra_len + h.offset
            if offset + h.nbytes > file_size:
                raise DataError(f"cannot read {where}: it runs past the end of the file; is the file truncated?")
            if h.nbytes:
                self._mmap = np.memmap(path, dtype=self.dtype, mode="r", offset=offset, shape=self.shape,
                                       order="F" if self._fortran else "C")
        elif self._fortran:
            self.note = (f"array {self.member[:-4]!r} is stored in Fortran (column) order in a compressed .npz, "
                         f"so it is read into memory whole ({h.nbytes / 1e6:.0f} MB), once; saved with "
                         "np.ascontiguousarray it would be streamed")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __getitem__(self, key):
        try:
            return self._get(key)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
            raise DataError(f"cannot read array {self.member[:-4]!r} of {self.path} ({type(e).__name__}: {e}); "
                            "is the file truncated?") from e

    def _get(self, key):
        if self._mmap is not None:
            return np.asarray(self._mmap[key])
        if self._fortran or not self.shape or not math.prod(self.shape):
            if self._whole is None:
                with zipfile.ZipFile(self.path) as z, z.open(self.member) as f:
                    self._whole = np.lib.format.read_array(f, allow_pickle=False)
            return self._whole[key]
        if isinstance(key, (int, np.integer)):
            return self._get(slice(int(key), int(key) + 1 if key != -1 else None))[0]
        if not isinstance(key, slice) or key.step not in (None, 1):
            return np.asarray(self._get(slice(None)))[key]
        start, stop, _ = key.indices(len(self))
        stop = max(start, stop)
        f = self._stream_at(self._header + start * self._row)
        data = f.read((stop - start) * self._row)
        self._pos = self._header + stop * self._row
        if len(data) != (stop - start) * self._row:
            raise EOFError("fewer bytes than the array header promises")
        return np.frombuffer(data, dtype=self.dtype).reshape((stop - start,) + self.shape[1:]).copy()

    def _stream_at(self, offset: int):
        """An open decompressing stream positioned at ``offset``; reused while reads move forward."""
        stream = getattr(self, "_stream", None)
        if stream is None or offset < self._pos:
            self.close()
            self._zip = zipfile.ZipFile(self.path)
            stream = self._stream = self._zip.open(self.member)
            self._pos = 0
        if offset > self._pos:
            stream.seek(offset)  # forward: decompresses only the gap
        self._pos = offset
        return stream

    def close(self) -> None:
        for name in ("_stream", "_zip"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
            setattr(self, name, None)


def read_arrays(path: Path) -> dict[str, np.ndarray | NpzMember]:
    """The arrays of a .npy (one, key "") or .npz file, none of them read yet."""
    check_regular_file(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise DataError(f"unsupported data file type {suffix!r} for {path}: use .npz or .npy")
    size = os.path.getsize(path)
    try:
        if suffix == ".npy":
            with open(path, "rb") as f:
                h = read_header(f, str(path), size)
            if not h.nbytes:
                return {"": np.zeros(h.shape, h.dtype)}
            return {"": np.load(path, mmap_mode="r", allow_pickle=False)}
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if i.filename.endswith(".npy")]
        return {i.filename[:-4]: NpzMember(path, i, size) for i in infos}
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"cannot read {path}: {' '.join(str(e).split())[:160]}") from e
    except (OSError, zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
        raise DataError(f"cannot read {path} as {suffix} ({type(e).__name__}: {e}); is the file truncated?") from e


RELEASE_MARGIN = 1 << 20


def release_rows(a, lo: int, hi: int) -> None:
    """Tell the OS that rows [lo, hi) of a memory-mapped array were consumed, so their pages leave this
    process's resident memory (reading a large file batch by batch then keeps memory flat)."""
    if isinstance(a, NpzMember):
        a = a._mmap
    mm = getattr(a, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not a.shape or hi <= lo or not a.flags.c_contiguous:
        return
    row = a.strides[0]
    # from 1 MB before the rows: the kernel's fault-around maps pages near each fault, including pages
    # of rows already released (measured: without the margin 3% of a 1.9 GB file stayed resident)
    start = max(0, a.offset % mmap.ALLOCATIONGRANULARITY + lo * row - RELEASE_MARGIN)
    stop = a.offset % mmap.ALLOCATIONGRANULARITY + hi * row
    start -= start % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, start, max(0, min(stop, len(mm)) - start))
    except (OSError, ValueError):
        pass
