"""Errors raised by jingwang's core, in one place.

    JingwangError            base class; never raised itself
    ├── ArtifactError        a model folder is missing, incomplete or inconsistent
    ├── InputError           an input file or record is malformed (carries file and line)
    └── WorkerError          a screening worker process could not load its model

The first two also derive from ValueError, so plain callers can catch that. The CLI and the API turn
them into exit code 2 / HTTP 4xx at their edge; library code never prints.
"""

from __future__ import annotations

from pathlib import Path


class JingwangError(Exception):
    """Base class of every error jingwang raises on purpose."""


class ArtifactError(JingwangError, ValueError):
    """A model artifact folder cannot be used (missing files or metadata)."""

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {message}" if path is not None else message)


class InputError(JingwangError, ValueError):
    """A record in an input file is malformed."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = ":".join(str(part) for part in (source, line) if part is not None)
        super().__init__(f"{where}: {message}" if where else message)


class WorkerError(JingwangError):
    """A worker process of `models.pool.ScreenerPool` could not load its model."""
