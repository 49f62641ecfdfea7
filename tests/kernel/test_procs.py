"""netops.procs in a lab cell: spawn, find, stop (root: the cell's user namespace and cgroups are real)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from netops import cell, procs
from netops.errors import ApplyError


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def lab(cell_lab):
    return cell_lab


@pytest.fixture
def daemon(lab):
    pid = procs.spawn(["sleep", "60"], lab=lab.lab, role="test:sleep", namespace=lab.fabric)
    yield pid
    for proc in procs.find(lab.lab):
        procs.stop(proc)


def test_spawned_daemon_is_detached_in_its_cgroup_and_found(daemon, lab):
    found = procs.find(lab.lab)
    assert [p.pid for p in found] == [daemon]
    proc = found[0]
    assert proc.role == "test:sleep" and proc.argv == ("sleep", "60") and proc.node == cell.FABRIC_CGROUP
    with open(f"/proc/{daemon}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) != os.getpid()  # reparented: never our zombie
    assert int(fields[3]) != os.getsid(0)  # a session of its own, not ours (and not its leader: no tty ever)
    # found through its cgroup, not its environment (which it could rewrite); nothing of the agent's leaks in
    assert f"/topolab/{lab.lab}/{cell.FABRIC_CGROUP}/test:sleep" in open(f"/proc/{daemon}/cgroup").read()
    env = open(f"/proc/{daemon}/environ", "rb").read().split(b"\0")
    assert not any(e.startswith((b"HOME=", b"TOPOLAB_")) for e in env)
    uid = int(open(f"/proc/{daemon}/status").read().split("Uid:")[1].split()[0])
    assert uid == lab.cell.uid


def test_find_filters_by_role(daemon, lab):
    assert procs.find(lab.lab, "test:sleep")
    assert procs.find(lab.lab, "other") == []
    assert procs.find("otherlab") == []


def test_stop_kills_the_process(daemon, lab):
    procs.stop(procs.find(lab.lab)[0])
    assert not _alive(daemon)
    assert procs.find(lab.lab) == []


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(lab):
    # sh ignores TERM via trap; `exec` is not used so the trap stays in force while sleep runs as its child
    pid = procs.spawn(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"], lab=lab.lab, role="test:stubborn",
                      namespace=lab.fabric)
    time.sleep(0.2)
    proc = procs.find(lab.lab, "test:stubborn")[0]
    started = time.monotonic()
    procs.stop(proc, timeout=0.5)
    assert not _alive(pid) and time.monotonic() - started >= 0.5
    for child in procs.find(lab.lab):  # the orphaned `sleep 1` stays in the role's cgroup
        procs.stop(child)


def test_stop_all_ends_a_fork_bomb(lab):
    # forks until the node's pids limit, and keeps trying: whatever is killed is replaced at once
    bomb = "import os, time\nwhile True:\n    try:\n        os.fork() or time.sleep(1000)\n    except OSError:\n        pass"
    procs.spawn(["python3", "-c", bomb], lab=lab.lab, role="test:bomb", namespace=lab.fabric)
    time.sleep(1)
    assert procs.find(lab.lab, "test:bomb")
    procs.stop_all(lab.lab, "test:bomb", timeout=5)
    assert procs.find(lab.lab, "test:bomb") == []


def test_a_process_outside_the_labs_cgroups_is_never_found_and_never_signalled(lab):
    victim = subprocess.Popen(["sleep", "60"], env={"TOPOLAB_LAB": lab.lab, "TOPOLAB_ROLE": "test:sleep"})
    try:
        assert victim.pid not in [p.pid for p in procs.find()]  # its forged environment counts for nothing
        start = int(open(f"/proc/{victim.pid}/stat").read().rsplit(")", 1)[1].split()[19])
        forged = procs.TaggedProcess(victim.pid, lab.lab, "test:sleep", ("sleep", "60"), start)
        with pytest.raises(ApplyError, match="refusing"):
            procs.stop(forged, timeout=0.2)
        assert victim.poll() is None  # still running
        reused = procs.TaggedProcess(victim.pid, lab.lab, "test:sleep", ("sleep", "60"), start - 1)
        procs.stop(reused, timeout=0.2)  # a different start time: our process is gone, nothing is signalled
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_spawn_rejects_bad_argv_namespaces_and_labs_without_a_cell(lab):
    for argv in (["sleep", "1\0"], [], ["sleep", 1]):
        with pytest.raises(ApplyError):
            procs.spawn(argv, lab=lab.lab, role="r", namespace=lab.fabric)  # type: ignore[arg-type]
    for namespace in ("../etc", "tl-nosuchns-x", "tl-otherlab"):
        with pytest.raises(ApplyError):
            procs.spawn(["sleep", "1"], lab=lab.lab, role="r", namespace=namespace)
    with pytest.raises(ApplyError, match="no cell"):
        procs.spawn(["sleep", "1"], lab="nocell", role="r", namespace=None)
    with pytest.raises(ApplyError, match="No such file"):
        procs.spawn(["/nonexistent/prog"], lab=lab.lab, role="r", namespace=lab.fabric)
    assert procs.find(lab.lab) == []


def test_a_namespace_outside_the_cell_is_refused(lab):
    subprocess.run(["ip", "netns", "add", f"tl-{lab.lab}-plain"], check=True)
    try:
        with pytest.raises(ApplyError, match="not in a lab cell"):
            procs.spawn(["sleep", "1"], lab=lab.lab, role="r", namespace=f"tl-{lab.lab}-plain")
    finally:
        subprocess.run(["ip", "netns", "del", f"tl-{lab.lab}-plain"], check=True)


def test_spawn_writes_output_to_the_log_as_the_labs_uid(lab):
    log = cell.cell_dir(lab.lab) / "out.log"
    pid = procs.spawn(["sh", "-c", "echo hello; echo oops >&2"], lab=lab.lab, role="test:echo",
                      namespace=lab.fabric, log_path=log)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_text().split() == ["hello", "oops"]
    assert os.stat(log).st_uid == lab.cell.uid
    # a log path the lab may not write is refused by the kernel, not written by root
    with pytest.raises(ApplyError, match="Permission denied"):
        procs.spawn(["true"], lab=lab.lab, role="test:x", namespace=lab.fabric, log_path=cell.cell_dir(lab.lab)
                    .parent / "evil.log")
