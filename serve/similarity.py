"""Near-duplicate detection for campaign clusters: MinHash over character 3-grams, with LSH bands.

An ad re-posted with small changes (another phone number, an emoji, a reordered line)
keeps most of its character 3-grams, so two versions have a high Jaccard similarity. Each
text gets a MinHash signature of ``NUM_HASHES`` values; ``BANDS`` bands of ``ROWS`` values
are hashed to 64-bit keys stored in an indexed table, so candidates are found with one
indexed lookup and confirmed by the signature agreement (an estimate of Jaccard).
With 10 bands of 2 rows a pair at Jaccard 0.6 shares a band with probability ~0.99.

Shingles come from a light fold (NFKC, lower case, letters, digits and Han characters
only), not the screening normaliser: clustering needs only stable, fast shingles.
"""

from __future__ import annotations

import hashlib
import struct
import unicodedata
import zlib

import numpy as np

NUM_HASHES = 20
BANDS = 10
ROWS = NUM_HASHES // BANDS
SHINGLE = 3
_PRIME = 4_294_967_311  # the first prime above 2**32: every crc32 value is below it
_rng = np.random.default_rng(20261129)  # fixed seed: signatures must be stable across runs
_A = _rng.integers(1, 2**31, size=NUM_HASHES, dtype=np.uint64)
_B = _rng.integers(0, 2**31, size=NUM_HASHES, dtype=np.uint64)


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(c for c in folded if c.isalnum())


def minhash(text: str) -> list[int] | None:
    """The MinHash signature of ``text``, or None when it has no letters or digits."""
    folded = _fold(text)
    if not folded:
        return None
    grams = {folded[i : i + SHINGLE] for i in range(max(1, len(folded) - SHINGLE + 1))}
    hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
    # (a * x + b) mod p for every hash function at once; a < 2**31 and x < 2**32 cannot overflow.
    values = (np.outer(hashes, _A) + _B) % np.uint64(_PRIME)
    return [int(v) for v in values.min(axis=0)]


def band_keys(signature: list[int]) -> list[int]:
    """One signed 64-bit key per band (fits a BIGINT column)."""
    keys = []
    for band in range(BANDS):
        rows = signature[band * ROWS : (band + 1) * ROWS]
        digest = hashlib.blake2b(struct.pack("<3Q", band, *rows), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "big", signed=True))
    return keys


def similarity(a: list[int], b: list[int]) -> float:
    """Estimated Jaccard similarity of two texts from their signatures."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / NUM_HASHES
