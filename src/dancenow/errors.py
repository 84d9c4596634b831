"""Errors that reach the user as one clear line (the CLI prints them and exits non-zero)."""

from __future__ import annotations

from pathlib import Path


class DancenowError(Exception):
    """A user-facing error. Its message is one line naming the file and the problem."""


class InputError(DancenowError):
    """A user-supplied file is missing, unreadable or not what it should be."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")
