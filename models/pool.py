"""Screening batches on several processes, results in input order (`jingwang scan --workers`).

One process scores with a multi-threaded onnxruntime session, but normalising, the lexicon
scan, tokenizing and the TF-IDF model are Python under one GIL, and while they run the
other cores idle. N processes with cores / N onnxruntime threads each keep every core busy:
on 2 cores, `jingwang scan` of 20,000 posts took 32-34 s on two single-threaded workers
against 39-46 s in one two-threaded process (three runs each, start-up included).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from models.errors import WorkerError

T = TypeVar("T")

_screener: Any = None
_load_error: str | None = None


def _load(model: str, lexicon_mode: str | None, threads: int) -> None:
    global _screener, _load_error
    from models.onnx_model import THREADS_ENV
    from models.scorer import Screener

    os.environ[THREADS_ENV] = str(threads)
    try:
        _screener = Screener.load(model, lexicon_mode=lexicon_mode)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - reported by the first batch instead: an
        # initializer that raises makes multiprocessing restart the worker forever.
        _load_error = f"{type(exc).__name__}: {exc}"


def _screen(texts: list[str]) -> list[dict[str, Any]]:
    if _screener is None:
        raise WorkerError(f"a worker could not load the model ({_load_error})")
    return [result.to_dict() for result in _screener.screen(texts)]


class ScreenerPool:
    """`workers` processes, each with its own `Screener` for `model`; use as a context manager."""

    def __init__(self, model: str, workers: int, *, lexicon_mode: str | None = None) -> None:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        # spawn: the parent may already run threads (progress bar, onnxruntime), unsafe to fork.
        self._pool = multiprocessing.get_context("spawn").Pool(
            workers, initializer=_load, initargs=(model, lexicon_mode, threads)
        )
        self._in_flight = 2 * workers  # bounded, so a huge input is not read ahead into memory

    def map(self, batches: Iterable[T], texts: Callable[[T], list[str]]) -> Iterator[tuple[T, list[dict[str, Any]]]]:
        """(batch, one `Screening.to_dict()` per text of the batch), in input order."""
        pending: deque[tuple[T, Any]] = deque()
        for batch in batches:
            pending.append((batch, self._pool.apply_async(_screen, (texts(batch),))))
            if len(pending) >= self._in_flight:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> ScreenerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
