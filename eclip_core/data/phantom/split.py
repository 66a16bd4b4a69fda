"""The train / val / test split of the Open-I studies.

Most IU X-ray papers use the R2Gen split (2,069 train / 296 val / 590 test studies). Its uid -> split
table ships with the project as ``r2gen_split.csv`` (ids and split only, no report text), so the
product needs no other data. Studies it lacks get a split seeded by a hash of (seed, uid), in
R2Gen's 7 : 1 : 2 proportions; a uid's split never depends on which other studies are present, so a
test study can never move into training.

>>> load_r2gen_split()["CXR2"]
'test'
>>> assign_split("CXR2"), assign_split("NOT-IN-TABLE") in ("train", "val", "test")
('test', True)
"""

from __future__ import annotations

import csv
import functools
import zlib
from importlib import resources

SPLIT_FILE = "r2gen_split.csv"
FALLBACK_FRACTIONS = (0.7, 0.1, 0.2)


@functools.lru_cache(maxsize=1)
def load_r2gen_split() -> dict[str, str]:
    """uid -> "train" | "val" | "test" from the project's copy of the R2Gen split."""
    text = resources.files("eclip_core.data.phantom").joinpath(SPLIT_FILE).read_text(encoding="utf-8")
    return {row["uid"]: row["split"] for row in csv.DictReader(text.splitlines())}


def hashed_split(uid: str, seed: int = 0) -> str:
    u = zlib.crc32(f"split:{seed}:{uid}".encode()) / 2**32
    train, val, _ = FALLBACK_FRACTIONS
    return "train" if u < train else "val" if u < train + val else "test"


def assign_split(uid: str, seed: int = 0) -> str:
    """The R2Gen split of ``uid``, or a seeded hash split for uids R2Gen lacks."""
    return load_r2gen_split().get(uid) or hashed_split(uid, seed)
