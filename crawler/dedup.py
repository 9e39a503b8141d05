"""Page identity across crawls: URL fingerprints, content hashes, near-duplicate sim-hashes.

A `PageState` store remembers, per URL fingerprint, the content hash and version last
screened. A recrawl fetches a page again and compares: same hash -> unchanged, skipped;
new hash -> a new version, screened again. Near-duplicates (the same ad reposted under a
new URL with a changed phone number) are found by 64-bit sim-hash within `NEAR_DISTANCE`
bits, looked up through four 16-bit bands: two hashes that differ in at most 3 bits agree
exactly on at least one band (pigeonhole), so each lookup is a handful of set reads.

Two stores: `SQLiteState` (one node, a file that outlives the process) and `RedisState`
(shared by distributed nodes). Unlike scrapy-redis's request fingerprints, these records
never make a page un-fetchable: they only decide whether a fetched page is new.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from w3lib.url import canonicalize_url

__all__ = [
    "NEAR_DISTANCE",
    "PageRecord",
    "PageState",
    "RedisState",
    "SQLiteState",
    "content_hash",
    "hamming",
    "simhash",
    "url_fingerprint",
]

NEAR_DISTANCE = 3
"""Sim-hashes at most this many bits apart are near-duplicates."""

_BANDS = 4
_BAND_BITS = 64 // _BANDS
_NOT_WORD = re.compile(r"[\s\W_]+", re.UNICODE)
_ASCII_ALNUM = re.compile(r"[0-9a-z]+")


def url_fingerprint(url: str) -> str:
    """Stable id of a URL: sha1 of its canonical form (query order, fragments ignored)."""
    return hashlib.sha1(canonicalize_url(url).encode("utf-8")).hexdigest()


def content_hash(text: str) -> str:
    """Hash of the clean text, blind to whitespace and punctuation changes."""
    return hashlib.sha1(_NOT_WORD.sub("", text).lower().encode("utf-8")).hexdigest()


def simhash(text: str, shingle: int = 3) -> int:
    """64-bit sim-hash over character shingles (Chinese has no spaces to split words on).

    Digits and Latin letters are left out when the text is mostly Chinese: a repost usually
    keeps the wording and changes the phone number, WeChat id or price, and those would
    otherwise move a short post's hash by more than `NEAR_DISTANCE` bits.
    """
    chars = _NOT_WORD.sub("", text).lower()
    wording = _ASCII_ALNUM.sub("", chars)
    if len(wording) >= max(10, len(chars) // 2):
        chars = wording
    if not chars:
        return 0
    grams = {chars[i : i + shingle] for i in range(max(1, len(chars) - shingle + 1))}
    weights = [0] * 64
    for gram in grams:
        value = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "big")
        for bit in range(64):
            weights[bit] += 1 if value >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


def _bands(value: int) -> list[str]:
    mask = (1 << _BAND_BITS) - 1
    return [f"{i}:{(value >> (i * _BAND_BITS)) & mask:04x}" for i in range(_BANDS)]


@dataclass
class PageRecord:
    """What the store remembers about one URL."""

    url_fp: str
    url: str
    content_hash: str
    simhash: int
    version: int
    first_seen: float
    last_seen: float
    etag: str | None = None
    """Validators of the page's last response, for a conditional GET on the next crawl."""
    last_modified: str | None = None


class PageState(Protocol):
    """Store of `PageRecord`s shared by the dedup pipeline and the API sink."""

    def get(self, url_fp: str) -> PageRecord | None: ...

    def put(self, record: PageRecord) -> None: ...

    def forget(self, url_fp: str) -> None: ...

    def find_near(self, value: int, exclude: str) -> PageRecord | None: ...

    def close(self) -> None: ...


class SQLiteState:
    """`PageState` in a SQLite file; one crawler process at a time."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL stays consistent on a crash and skips an fsync per page; at worst
        # the last pages are screened again on the next crawl.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pages (url_fp TEXT PRIMARY KEY, record TEXT NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS bands (band TEXT NOT NULL, url_fp TEXT NOT NULL, "
            "PRIMARY KEY (band, url_fp))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS bands_by_page ON bands (url_fp)")

    def get(self, url_fp: str) -> PageRecord | None:
        row = self._db.execute("SELECT record FROM pages WHERE url_fp = ?", (url_fp,)).fetchone()
        return PageRecord(**json.loads(row[0])) if row else None

    def put(self, record: PageRecord) -> None:
        old = self.get(record.url_fp)
        with self._db:
            if old is not None:
                self._db.execute("DELETE FROM bands WHERE url_fp = ?", (record.url_fp,))
            self._db.execute(
                "INSERT OR REPLACE INTO pages VALUES (?, ?)",
                (record.url_fp, json.dumps(asdict(record))),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO bands VALUES (?, ?)",
                [(band, record.url_fp) for band in _bands(record.simhash)],
            )

    def forget(self, url_fp: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM pages WHERE url_fp = ?", (url_fp,))
            self._db.execute("DELETE FROM bands WHERE url_fp = ?", (url_fp,))

    def find_near(self, value: int, exclude: str) -> PageRecord | None:
        bands = _bands(value)
        rows = self._db.execute(
            f"SELECT DISTINCT url_fp FROM bands WHERE band IN ({','.join('?' * len(bands))})",
            bands,
        ).fetchall()
        return _closest(value, exclude, (self.get(row[0]) for row in rows))

    def close(self) -> None:
        self._db.close()


class RedisState:
    """`PageState` in Redis under ``<prefix>:pages`` and ``<prefix>:band:*``; shared by nodes."""

    def __init__(self, server: Any, prefix: str) -> None:
        self.server = server
        self.prefix = prefix

    def get(self, url_fp: str) -> PageRecord | None:
        raw = self.server.hget(f"{self.prefix}:pages", url_fp)
        return PageRecord(**json.loads(raw)) if raw else None

    def put(self, record: PageRecord) -> None:
        old = self.get(record.url_fp)
        pipe = self.server.pipeline()
        if old is not None:
            for band in _bands(old.simhash):
                pipe.srem(f"{self.prefix}:band:{band}", record.url_fp)
        pipe.hset(f"{self.prefix}:pages", record.url_fp, json.dumps(asdict(record)))
        for band in _bands(record.simhash):
            pipe.sadd(f"{self.prefix}:band:{band}", record.url_fp)
        pipe.execute()

    def forget(self, url_fp: str) -> None:
        old = self.get(url_fp)
        pipe = self.server.pipeline()
        if old is not None:
            for band in _bands(old.simhash):
                pipe.srem(f"{self.prefix}:band:{band}", url_fp)
        pipe.hdel(f"{self.prefix}:pages", url_fp)
        pipe.execute()

    def find_near(self, value: int, exclude: str) -> PageRecord | None:
        keys = [f"{self.prefix}:band:{band}" for band in _bands(value)]
        candidates = self.server.sunion(keys)
        return _closest(value, exclude, (self.get(_text(fp)) for fp in candidates))

    def close(self) -> None:
        """Nothing to release: the connection pool belongs to the caller."""


def new_record(
    url: str,
    text_hash: str,
    value: int,
    previous: PageRecord | None,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
) -> PageRecord:
    """The record for a page seen now: version 1, or one past the previous version."""
    now = time.time()
    return PageRecord(
        url_fp=url_fingerprint(url),
        url=url,
        content_hash=text_hash,
        simhash=value,
        version=previous.version + 1 if previous else 1,
        first_seen=previous.first_seen if previous else now,
        last_seen=now,
        etag=etag,
        last_modified=last_modified,
    )


def _closest(value: int, exclude: str, records: Any) -> PageRecord | None:
    """The nearest record within NEAR_DISTANCE; among equals the oldest (the original post)."""
    best: tuple[int, float] | None = None
    found: PageRecord | None = None
    for record in records:
        if record is None or record.url_fp == exclude:
            continue
        key = (hamming(value, record.simhash), record.first_seen)
        if key[0] <= NEAR_DISTANCE and (best is None or key < best):
            best, found = key, record
    return found


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
