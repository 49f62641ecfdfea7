"""netops.procs without namespaces: spawn, find, stop, run (no root needed)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from netops import procs
from netops.errors import ApplyError

LAB = "tproc"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture
def daemon():
    pid = procs.spawn(["sleep", "60"], lab=LAB, role="test:sleep", namespace=None)
    yield pid
    for proc in procs.find(LAB):
        procs.stop(proc)


def test_spawned_daemon_is_detached_tagged_and_found(daemon):
    found = procs.find(LAB)
    assert [p.pid for p in found] == [daemon]
    proc = found[0]
    assert proc.role == "test:sleep" and proc.argv == ("sleep", "60")
    with open(f"/proc/{daemon}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) != os.getpid()  # reparented: never our zombie
    assert int(fields[3]) != os.getsid(0)  # a session of its own, not ours (and not its leader: no tty ever)
    env = open(f"/proc/{daemon}/environ", "rb").read().split(b"\0")
    assert b"TOPOLAB_LAB=" + LAB.encode() in env and not any(e.startswith(b"HOME=") for e in env)


def test_find_filters_by_role(daemon):
    assert procs.find(LAB, "test:sleep")
    assert procs.find(LAB, "other") == []
    assert procs.find("otherlab") == [] or all(p.lab == "otherlab" for p in procs.find("otherlab"))


def test_stop_kills_the_process(daemon):
    procs.stop(procs.find(LAB)[0])
    assert not _alive(daemon)
    assert procs.find(LAB) == []


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored():
    # sh ignores TERM via trap; `exec` is not used so the trap stays in force while sleep runs as its child
    pid = procs.spawn(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"], lab=LAB, role="test:stubborn",
                      namespace=None)
    time.sleep(0.2)
    proc = procs.find(LAB, "test:stubborn")[0]
    started = time.monotonic()
    procs.stop(proc, timeout=0.5)
    assert not _alive(pid) and time.monotonic() - started >= 0.5
    for child in procs.find(LAB):  # the orphaned `sleep 1` inherited the tag
        procs.stop(child)


def test_untagged_process_is_never_found_and_never_signalled():
    victim = subprocess.Popen(["sleep", "60"])
    try:
        assert victim.pid not in [p.pid for p in procs.find()]
        start = int(open(f"/proc/{victim.pid}/stat").read().rsplit(")", 1)[1].split()[19])
        forged = procs.TaggedProcess(victim.pid, LAB, "test:sleep", ("sleep", "60"), start)
        with pytest.raises(ApplyError, match="refusing"):
            procs.stop(forged, timeout=0.2)
        assert victim.poll() is None  # still running
        reused = procs.TaggedProcess(victim.pid, LAB, "test:sleep", ("sleep", "60"), start - 1)
        procs.stop(reused, timeout=0.2)  # a different start time: our process is gone, nothing is signalled
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_spawn_rejects_bad_argv_and_namespace():
    with pytest.raises(ApplyError):
        procs.spawn(["sleep", "1\0"], lab=LAB, role="r", namespace=None)
    with pytest.raises(ApplyError):
        procs.spawn([], lab=LAB, role="r", namespace=None)
    with pytest.raises(ApplyError):
        procs.spawn(["sleep", 1], lab=LAB, role="r", namespace=None)  # type: ignore[list-item]
    with pytest.raises(ApplyError):
        procs.spawn(["sleep", "1"], lab=LAB, role="r", namespace="../etc")
    with pytest.raises(ApplyError):
        procs.spawn(["sleep", "1"], lab=LAB, role="r", namespace="tl-nosuchns-x")
    with pytest.raises(ApplyError, match="No such file"):
        procs.spawn(["/nonexistent/prog"], lab=LAB, role="r", namespace=None)


def test_spawn_writes_output_to_the_log(tmp_path):
    log = tmp_path / "out.log"
    pid = procs.spawn(["sh", "-c", "echo hello; echo oops >&2"], lab=LAB, role="test:echo", namespace=None,
                      log_path=log)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.read_text().split() == ["hello", "oops"]


def test_run_returns_output_and_raises_with_stderr():
    assert procs.run(["echo", "hi"]).stdout == b"hi\n"
    assert procs.run(["cat"], input=b"abc").stdout == b"abc"
    with pytest.raises(ApplyError, match="boom") as err:
        procs.run(["sh", "-c", "echo boom >&2; exit 3"], element="nodes.r1")
    assert err.value.element == "nodes.r1"
    assert procs.run(["false"], check=False).returncode == 1
