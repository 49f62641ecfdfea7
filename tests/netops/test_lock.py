"""netops.lock: one operation per lab; the lock file lives only while the lab does (issue 17: a destroy leaves
nothing under the run dir)."""
from __future__ import annotations

import fcntl
import os

import pytest

from netops import lock, naming
from netops.errors import LabBusyError


@pytest.fixture(autouse=True)
def run_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPOLAB_RUN_DIR", str(tmp_path))
    return tmp_path


def test_the_lock_file_of_a_lab_without_a_run_dir_is_gone_after_the_operation(run_root):
    with lock.lab_lock("lab1"):
        assert (run_root / "lab1.lock").exists()
        with pytest.raises(LabBusyError, match="lab1"):
            with lock.lab_lock("lab1"):
                pass
    assert list(run_root.iterdir()) == []


def test_the_lock_file_of_a_lab_that_exists_stays(run_root):
    naming.run_dir("lab1").mkdir()
    with lock.lab_lock("lab1"):
        pass
    assert (run_root / "lab1.lock").exists()


def test_a_lock_taken_on_a_file_removed_meanwhile_is_taken_again_on_the_new_one(run_root, monkeypatch):
    """The race of removing a lock file: B opens the file, A removes it and leaves, C makes a new one and holds
    it; B's flock on the old file succeeds but B must not go on: it starts again, and finds the lab busy."""
    path = run_root / "lab1.lock"
    real_open = os.open
    held: list[int] = []

    def open_then_replace(p, flags, mode=0o777):
        fd = real_open(p, flags, mode)
        if not held:  # B has opened the old file; A removes it, C makes and locks the new one
            os.unlink(p)
            held.append(real_open(p, os.O_RDWR | os.O_CREAT, 0o600))
            fcntl.flock(held[0], fcntl.LOCK_EX)
        return fd

    monkeypatch.setattr(lock.os, "open", open_then_replace)
    with pytest.raises(LabBusyError):
        with lock.lab_lock("lab1"):
            pytest.fail("two holders of one lab's lock")
    os.close(held[0])
    assert path.exists()
