"""A real store failure for chdb: its table folders made immutable (chattr +i), so inserts fail
inside the engine until the flag is removed. Needs root and a file system with the flag."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["chattr_unavailable", "immutable"]


def _chattr(flag: str, path: str) -> None:
    subprocess.run(["chattr", flag, path], check=True, capture_output=True)


def chattr_unavailable() -> str | None:
    """Why the immutable flag cannot be used here, or None when it can."""
    if shutil.which("chattr") is None or os.geteuid() != 0:
        return "needs chattr and root (the immutable flag) to make the store fail for real"
    with tempfile.TemporaryDirectory() as probe:
        try:
            _chattr("+i", probe)
        except subprocess.CalledProcessError as exc:
            return f"the file system refuses chattr +i: {exc.stderr!r}"
        _chattr("-i", probe)
    return None


@contextmanager
def immutable(paths: Iterable[str]) -> Iterator[None]:
    """Make folders immutable for the block; always undone."""
    done: list[str] = []
    try:
        for p in paths:
            _chattr("+i", p)
            done.append(p)
        yield
    finally:
        for p in done:
            _chattr("-i", p)
