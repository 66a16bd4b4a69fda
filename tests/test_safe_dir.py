"""Crash-safe folder replacement: a kill between any two file-system steps of a save leaves a complete old
or new version for the reader, and the next run removes what the killed save left."""

from __future__ import annotations

import os
import threading
import time

import pytest

from eclip_core.atomic import atomic_dir
from eclip_core.safe_dir import recover_dir, siblings

DEAD_PID = 2**22 + 11  # above any kernel's pid_max: never a live process


def _write(target, version: str) -> None:
    """A save of two files, the second written last: a reader seeing both equal saw a whole version."""
    with atomic_dir(target) as tmp:
        (tmp / "first.txt").write_text(version)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "second.txt").write_text(version)


def _read(target) -> str:
    folder = recover_dir(target)
    first, second = (folder / "first.txt").read_text(), (folder / "sub" / "second.txt").read_text()
    assert first == second, "a reader saw a mixed or incomplete version"
    return first


def test_a_kill_between_any_two_steps_leaves_a_whole_version_and_is_cleaned_up(tmp_path, kill_switch):
    probe = tmp_path / "probe" / "thing"
    _write(probe, "A")
    kill_switch.arm(probe.parent, None)
    _write(probe, "B")
    steps = kill_switch.calls
    kill_switch.disarm()
    assert steps >= 5  # mkdir tmp, mkdir sub, tmp->new, old aside, new in, delete old

    seen = set()
    for at in range(1, steps + 1):
        target = tmp_path / f"kill{at}" / "thing"
        _write(target, "A")
        kill_switch.arm(target.parent, at)
        with pytest.raises(kill_switch.Killed):
            _write(target, "B")
        kill_switch.disarm()
        version = _read(target)  # the loader: finds a whole version and removes the leftovers
        assert version in ("A", "B"), at
        seen.add(version)
        assert siblings(target) == [] and os.listdir(target.parent) == ["thing"], (at, os.listdir(target.parent))
        _write(target, "C")
        assert _read(target) == "C" and os.listdir(target.parent) == ["thing"]
    # Killed before the new version was complete: the old one; after: the new one is moved in.
    assert seen == {"A", "B"}


def test_the_next_save_cleans_up_without_a_load(tmp_path, kill_switch):
    target = tmp_path / "thing"
    _write(target, "A")
    kill_switch.arm(tmp_path, 3)  # dies inside the write (making sub/): an incomplete temporary folder stays
    with pytest.raises(kill_switch.Killed):
        _write(target, "B")
    kill_switch.disarm()
    assert [s.role for s in siblings(target)] == ["tmp"]
    _write(target, "C")
    assert os.listdir(tmp_path) == ["thing"] and _read(target) == "C"


def test_an_exception_in_the_body_keeps_the_old_version(tmp_path):
    target = tmp_path / "thing"
    _write(target, "A")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "first.txt").write_text("half")
        raise RuntimeError("disk trouble")
    assert _read(target) == "A" and os.listdir(tmp_path) == ["thing"]


def _legacy(tmp_path, name: str, version: str):
    folder = tmp_path / name
    (folder / "sub").mkdir(parents=True)
    (folder / "first.txt").write_text(version)
    (folder / "sub" / "second.txt").write_text(version)
    return folder


def test_folders_left_by_the_earlier_two_rename_code_are_adopted(tmp_path):
    # The earlier atomic_dir: old moved to .thing.old.<pid>, new written to .thing.<mkdtemp>; killed between.
    _legacy(tmp_path, f".thing.old.{DEAD_PID}", "A")
    time.sleep(0.01)
    _legacy(tmp_path, ".thing.k2j4_x9q", "B")
    target = tmp_path / "thing"
    assert _read(target) == "A"  # no validator: only the moved-aside folder is known to be complete
    assert os.listdir(tmp_path) == ["thing"]

    target2 = tmp_path / "two" / "thing"
    _legacy(target2.parent, f".thing.old.{DEAD_PID}", "A")
    time.sleep(0.01)
    _legacy(target2.parent, ".thing.k2j4_x9q", "B")
    folder = recover_dir(target2, validate=lambda f: (f / "sub" / "second.txt").is_file())
    assert (folder / "first.txt").read_text() == "B" and os.listdir(target2.parent) == ["thing"]


def test_a_live_writers_folders_are_left_alone(tmp_path):
    target = tmp_path / "thing"
    _write(target, "A")
    live = _legacy(tmp_path, f".thing.tmp.{time.time_ns()}-{os.getppid()}-abc", "B")
    dead = _legacy(tmp_path, f".thing.tmp.{time.time_ns()}-{DEAD_PID}-abd", "B")
    assert _read(target) == "A"
    assert live.is_dir() and not dead.exists()


def test_a_reader_waits_for_a_live_writer_between_its_two_renames(tmp_path):
    target = tmp_path / "thing"
    stamp = time.time_ns()
    old = _legacy(tmp_path, f".thing.old.{stamp}-{os.getppid()}-abc", "A")
    new = _legacy(tmp_path, f".thing.new.{stamp}-{os.getppid()}-abc", "B")
    errors = []

    def writer():  # the other process finishes its save a moment later
        time.sleep(0.3)
        try:
            os.replace(new, target)
            time.sleep(0.1)
            import shutil

            shutil.rmtree(old)
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert _read(target) == "B"
    finally:
        thread.join()
    assert errors == []  # the reader did not take the writer's folders from under it


def test_a_read_only_folder_is_read_where_the_version_is(tmp_path, monkeypatch):
    target = tmp_path / "thing"
    _write(target, "A")
    os.replace(target, tmp_path / f".thing.old.{time.time_ns()}-{DEAD_PID}-abc")

    def refuse(src, dst):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    folder = recover_dir(target)
    assert folder.name.startswith(".thing.old.") and (folder / "first.txt").read_text() == "A"
