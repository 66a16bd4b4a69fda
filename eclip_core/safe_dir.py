"""Crash-safe replacement of a whole folder, and recovery after a kill in the middle of one.

Replacing a folder takes several renames; a process killed between two of them must never leave a reader
without a complete version. Every temporary sibling of ``<name>`` says in its name what it is, when it was
made and by which process::

    .<name>.tmp.<stamp>-<pid>-<rand>   being written: may be incomplete
    .<name>.new.<stamp>-<pid>-<rand>   written completely, waiting to be moved in
    .<name>.old.<stamp>-<pid>-<rand>   the version it replaces, moved aside, to be deleted

A replacement (:func:`replace_dir`): write into ``tmp``, flush it to disk, rename ``tmp`` to ``new``,
rename ``<name>`` to ``old``, rename ``new`` to ``<name>``, delete ``old``. Only ``tmp`` can be
incomplete; ``new`` and ``old`` are complete by construction, so a kill at any point leaves a complete
version somewhere. :func:`recover_dir` (called by every loader and before every write) finishes an
interrupted replacement: with ``<name>`` missing it adopts the newest complete sibling (``new`` before
``old``); with ``<name>`` present it moves a dead writer's ``new`` in; then it deletes what dead writers left.
Siblings of a live writer (another process, or this one mid-write) are never touched; with ``<name>``
missing because a live writer is between its two renames, the reader waits for it.

Folders left by earlier versions of this code (``.<name>.old.<pid>`` moved aside, ``.<name>.XXXXXXXX``
written by ``tempfile.mkdtemp``) are recognised too: the first is complete, the second only when the
loader's ``validate`` accepts it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("tmp", "new", "old")
_CURRENT = re.compile(r"^(tmp|new|old)\.(\d+)-(\d+)-([0-9a-f]+)$")
_LEGACY_OLD = re.compile(r"^old\.(\d+)$")
_LEGACY_TMP = re.compile(r"^[a-z0-9_]{8}$")  # tempfile.mkdtemp's random names
#: Tokens of the replacements this process has in progress (their siblings belong to a live writer).
_ACTIVE: set[str] = set()
#: Roles ranked for "newest complete": a replacement's new version outranks the one it moved aside.
_RANK = {"new": 2, "legacy_tmp": 2, "old": 1, "legacy_old": 1}

Validator = Callable[[Path], bool]


@dataclass(frozen=True)
class Sibling:
    """A temporary sibling folder of a target folder, parsed from its name."""

    path: Path
    role: str  # tmp | new | old | legacy_tmp | legacy_old
    stamp: int  # ns since the epoch (legacy folders: their mtime)
    pid: int | None
    token: str

    def alive(self) -> bool:
        """Whether the process that made it may still be using it (then it is left alone)."""
        if self.pid is None:
            return False
        if self.pid == os.getpid():
            return self.token in _ACTIVE
        return _pid_alive(self.pid)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: no safe probe, assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by someone else
        return True
    return True


def siblings(path: str | os.PathLike) -> list[Sibling]:
    """The temporary siblings of ``path`` (current and legacy names), oldest first."""
    path = Path(path)
    prefix = f".{path.name}."
    found: list[Sibling] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        rest = entry.name[len(prefix) :]
        if m := _CURRENT.match(rest):
            found.append(Sibling(Path(entry.path), m[1], int(m[2]), int(m[3]), f"{m[2]}-{m[3]}-{m[4]}"))
            continue
        legacy = "legacy_old" if (m := _LEGACY_OLD.match(rest)) else "legacy_tmp" if _LEGACY_TMP.match(rest) else None
        if legacy:
            try:
                stamp = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            found.append(Sibling(Path(entry.path), legacy, stamp, int(m[1]) if legacy == "legacy_old" else None, rest))
    return sorted(found, key=lambda s: (s.stamp, _RANK.get(s.role, 0)))


def _complete(s: Sibling, validate: Validator | None) -> bool:
    if s.role in ("new", "old", "legacy_old"):
        return True
    return s.role == "legacy_tmp" and validate is not None and _safe_validate(validate, s.path)


def _safe_validate(validate: Validator, folder: Path) -> bool:
    try:
        return bool(validate(folder))
    except Exception:  # noqa: BLE001 -- a validator that cannot read the folder rejects it
        return False


def _wait_for_live_writer(path: Path, wait_s: float) -> None:
    """``path`` is missing while a live writer has siblings: it is between two renames; give it time."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not path.exists():
        if not any(s.alive() and s.role in ("new", "old") for s in siblings(path)):
            return
        time.sleep(0.05)


def recover_dir(path: str | os.PathLike, validate: Validator | None = None, *, wait_s: float = 10.0) -> Path:
    """Finish or undo an interrupted replacement of ``path``; returns the folder to read.

    That is ``path`` itself, unless the file system refuses the renames (read-only), when it is the
    newest complete sibling. ``validate(folder) -> bool`` accepts legacy temporary folders as complete.
    Deletes temporary siblings whose writer is gone. Never raises for file-system trouble (it logs).
    """
    path = Path(path)
    found = siblings(path)
    if not found:
        return path
    if not path.exists():
        if any(s.alive() and s.role in ("new", "old") for s in found):
            _wait_for_live_writer(path, wait_s)
            found = siblings(path)
        if not path.exists():
            adopted = _adopt(path, [s for s in found if _complete(s, validate)])
            if adopted is not None and adopted != path:
                return adopted  # could not rename it into place: read it where it is
            found = siblings(path)
    else:
        # Leftovers come from one interrupted save (every save recovers first), so a dead writer's complete
        # new version is newer than the one in place: finish that save.
        pending = [s for s in found if s.role == "new" and not s.alive()]
        if pending and path.is_dir():
            _roll_forward(path, pending[-1])
            found = siblings(path)
    for s in found:
        if not s.alive():
            # Folders named by the earlier code are recognised by name pattern only: say so loudly.
            level = logging.WARNING if s.role.startswith("legacy") else logging.INFO
            log.log(level, "removing %s, left by an interrupted save of %s", s.path.name, path)
            shutil.rmtree(s.path, ignore_errors=True)
    return path


def _adopt(path: Path, complete: list[Sibling]) -> Path | None:
    """Rename the newest complete sibling to ``path``; None when there is none."""
    if not complete:
        return None
    best = complete[-1]
    try:
        os.replace(best.path, path)
    except OSError as exc:
        if path.exists():  # another reader adopted it first
            return path
        log.warning(
            "%s is missing after an interrupted save and %s cannot be moved back (%s); reading %s",
            path,
            best.path.name,
            exc,
            best.path,
        )
        return best.path
    log.warning(
        "%s was missing after an interrupted save: restored the newest complete version (%s)",
        path,
        "the new one" if _RANK[best.role] == 2 else "the previous one",
    )
    return path


def _roll_forward(path: Path, new: Sibling) -> None:
    """A dead writer finished writing ``new`` but did not move it in: complete its replacement."""
    old = path.with_name(f".{path.name}.old.{new.token}")
    try:
        os.replace(path, old)
        os.replace(new.path, path)
    except OSError as exc:
        log.warning("could not finish the interrupted save of %s (%s); keeping the version in place", path, exc)
        if not path.exists() and old.exists():
            try:
                os.replace(old, path)
            except OSError:
                pass
        return
    log.warning("%s: finished an interrupted save (moved its complete new version in)", path)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` (and the folders) to disk, so a rename publishes whole files."""
    for folder, _, files in os.walk(root):
        for name in [*files, "."]:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:  # e.g. folders on Windows: nothing more we can do
                pass
            finally:
                os.close(fd)


@contextmanager
def replace_dir(path: str | os.PathLike, *, validate: Validator | None = None, durable: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` whole.

    A crash at any point leaves a complete previous or new version for :func:`recover_dir`; an exception
    in the body leaves ``path`` as it was. ``durable``: flush the files to disk before publishing them
    (off for folders of thousands of small files that can be rebuilt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path, validate)  # finish or clean what a killed earlier save left
    token = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(3)}"
    tmp, new, old = (path.with_name(f".{path.name}.{role}.{token}") for role in ROLES)
    _ACTIVE.add(token)
    try:
        tmp.mkdir()
        yield tmp
        if durable:
            _fsync_tree(tmp)
        os.replace(tmp, new)
        if path.exists():
            os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        _ACTIVE.discard(token)
        _undo(path, tmp, new, old)


def _undo(path: Path, tmp: Path, new: Path, old: Path) -> None:
    """After a failure in :func:`replace_dir`: put the previous version back, drop the unpublished one."""
    try:
        if not path.exists() and old.exists():
            os.replace(old, path)
        for leftover in (tmp, new):
            if leftover.exists():
                shutil.rmtree(leftover)
    except OSError as exc:  # the next recover_dir finishes the job
        log.warning("could not clean up after a failed save of %s (%s)", path, exc)
