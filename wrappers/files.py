"""Atomic file writes: a file appears complete under its name, or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on a clean exit it is synced and
    renamed onto ``path``, on an error (or Ctrl-C) it is removed and ``path`` is untouched.

    The result gets the permissions of a plain ``open(path, "w")`` (0o666 less the umask),
    also when the writer replaces the temporary file; ``tempfile.mkstemp`` would leave it
    private (0o600): a dataset's behaviour policy or a shared checkpoint unreadable to
    others. ``suffix`` ends the temporary name, for writers that insist on an extension
    (SB3's ``.zip``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{suffix}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    mode = os.stat(tmp).st_mode & 0o777  # 0o666 less the umask, read without changing it
    try:
        yield tmp
        os.chmod(tmp, mode)  # writers that replace the file (safetensors) make it 0o600
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
