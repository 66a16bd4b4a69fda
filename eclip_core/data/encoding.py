"""Say what a text file that is not UTF-8 is, and how to convert it (for the manifest's error message).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "m.csv"
>>> _ = p.write_bytes("study_id\\nCXR1 épanchement\\n".encode("cp1252"))
>>> print(not_utf8_message(p, "manifest"))  # doctest: +ELLIPSIS
manifest ...m.csv is not UTF-8 text: byte 0xe9 at line 2, column 6 is invalid UTF-8. It decodes as cp1252 (Windows Western European; there it reads 'CXR1 épanchement'). Re-save it as UTF-8 (e.g. `iconv -f CP1252 -t UTF-8 m.csv > m.utf8.csv`, or "CSV UTF-8" in a spreadsheet) and point to that file.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

# (codec, how to name it, iconv's name), tried in order; latin-1 decodes any byte string, so it is last.
_CANDIDATES = (
    ("cp1252", "cp1252 (Windows Western European", "CP1252"),
    ("latin-1", "Latin-1 (ISO-8859-1", "LATIN1"),
)


def _utf16(raw: bytes) -> str | None:
    """The UTF-16 variant of ``raw`` (by byte-order mark, or by NUL bytes in ASCII text), else None."""
    if raw.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if raw.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    head = raw[:4096]
    if len(head) >= 8 and head.count(b"\x00") >= len(head) // 4:
        return "utf-16-le" if head[1::2].count(b"\x00") > head[0::2].count(b"\x00") else "utf-16-be"
    return None


def not_utf8_message(path: str | os.PathLike, what: str = "file") -> str:
    """Where ``path`` stops being UTF-8, the encoding it decodes as, and what to do."""
    path = Path(path)
    raw = path.read_bytes()
    body = raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw
    try:
        body.decode("utf-8")
        return f"{what} {path} is UTF-8"  # pragma: no cover -- only called after a decode error
    except UnicodeDecodeError as exc:
        start = exc.start
    line = body.count(b"\n", 0, start) + 1
    column = start - (body.rfind(b"\n", 0, start) + 1) + 1
    where = f"byte 0x{body[start]:02x} at line {line}, column {column} is invalid UTF-8"
    convert = f"`iconv -f {{}} -t UTF-8 {path.name} > {path.stem}.utf8{path.suffix}`"
    todo = ' (e.g. {}, or "CSV UTF-8" in a spreadsheet) and point to that file.'
    variant = _utf16(raw)
    if variant:
        return f"{what} {path} is not UTF-8 text: it is UTF-16 ({variant}). Re-save it as UTF-8" + todo.format(
            convert.format("UTF-16")
        )
    for codec, name, iconv in _CANDIDATES:
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            continue
        lines = text.splitlines()
        # A few characters around the byte only (single-byte codecs: byte column = character column).
        shown = lines[line - 1][max(0, column - 21) : column + 20] if line <= len(lines) else ""
        return (
            f"{what} {path} is not UTF-8 text: {where}. It decodes as {name}; there it reads "
            f"{shown!r}). Re-save it as UTF-8" + todo.format(convert.format(iconv))
        )
    return f"{what} {path} is not UTF-8 text: {where}. Re-save it as UTF-8."  # pragma: no cover
