"""Atomic writes: write to a temporary sibling, then rename over the target.

The one place that swaps files and folders into place. Everything it finishes gets
the same permissions, whatever wrote it (safetensors, for one, creates 0600 files
through mkstemp): files ``0o666 & ~umask`` (0644 under the usual umask 022),
folders ``0o777 & ~umask`` (0755).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    """The process umask, read from /proc where it can be (os.umask can only read it by
    setting it, which other threads could see for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of every file written through this module: 0o666 less the umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Mode of every folder written through this module: 0o777 less the umask."""
    return 0o777 & ~_umask()


def _fix_modes(root: Path) -> None:
    """Give `root` (a file, or a folder and everything under it) the module's modes."""
    fmode, dmode = file_mode(), dir_mode()
    if not root.is_dir():
        os.chmod(root, fmode)
        return
    os.chmod(root, dmode)
    for base, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(base, name), dmode)
        for name in files:
            os.chmod(os.path.join(base, name), fmode)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path`.

    The temporary keeps the target's extension (or `suffix`) so format-sniffing
    writers (PyAV, PIL) still pick the right format. On error it is removed.
    The finished file gets mode ``file_mode()``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else path.suffix
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{ext}")
    try:
        yield tmp
        _fix_modes(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to `path`; on success swap it in as `path`.

    The swap is two renames (an existing `path` -> a hidden ``.old`` sibling, the
    temporary -> `path`), then the old copy is removed; if the second rename fails the
    old folder is put back. On error the temporary is removed and `path` is untouched.
    Everything in the finished folder gets ``file_mode()`` / ``dir_mode()``. Callers
    decide beforehand whether an existing `path` may be replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    for p in (tmp, old):
        _remove(p)
    tmp.mkdir()
    try:
        yield tmp
        _fix_modes(tmp)
        if path.exists():
            os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            if old.exists():
                os.rename(old, path)
            raise
    finally:
        for p in (tmp, old):
            _remove(p)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (indented, sorted keys for diffable run folders)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return Path(path)
