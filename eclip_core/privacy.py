"""How logs name a file without naming it.

A file name is often identifying (exports and uploads are named after the patient: "DOE_JOHN_1960.dcm"),
so log lines about an image carry a short hash of its path instead: the same file gets the same tag, so
lines about one file can still be matched, but the name itself never reaches a log. Error messages are
different: they go back to whoever gave the file, who already knows its name.

>>> from pathlib import Path
>>> file_tag("/uploads/DOE_JOHN_1960.dcm")
'file#a9e39ff0'
>>> file_tag("/uploads/DOE_JOHN_1960.dcm") == file_tag(Path("/uploads/DOE_JOHN_1960.dcm"))
True
"""

from __future__ import annotations

import hashlib
import os


def file_tag(path: str | os.PathLike) -> str:
    """``file#`` plus the first 8 hex digits of the SHA-256 of the path as given."""
    return "file#" + hashlib.sha256(os.fsencode(os.fspath(path))).hexdigest()[:8]
