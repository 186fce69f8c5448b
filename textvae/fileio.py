"""Durable file writing: checksums, fsync, write-to-temporary-then-rename.

A rename within one directory is atomic on POSIX file systems, so a reader (or a crash) sees either the
old file or the complete new one, never a half-written file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, fsync'd and renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


#: ``errno`` values that mean "no room to write": a full disk, an exhausted quota, a file-size limit.
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(error: BaseException, path: str | Path | None = None) -> bool:
    """Whether ``error``, raised while writing (near) ``path``, means the file system had no room left.

    ``OSError`` carries an errno; safetensors says "os error 28"; torch's zip writer only says "unexpected
    pos", so for its ``RuntimeError`` the free space of ``path``'s file system decides (under 1 MiB)."""
    if isinstance(error, OSError) and error.errno in _NO_SPACE_ERRNOS:
        return True
    text = str(error)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    if isinstance(error, RuntimeError) and "inline_container" in text and path is not None:
        probe = Path(path)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            return shutil.disk_usage(probe).free < 1 << 20
        except OSError:
            return False
    return False
