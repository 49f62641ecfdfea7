"""Fixtures for kernel tests (root, real namespaces). Every engineer's tests/kernel/test_*.py uses these.

- The whole session holds an exclusive flock on /run/topolab-kernel-tests.lock, so kernel test runs of
  engineers sharing this machine run one after the other.
- TOPOLAB_RUN_DIR points at a private temp dir for the session.
- `inventory_guard` (autouse) fails a test that leaves a namespace, root-namespace link, nft rule or daemon behind.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import KERNEL_LOCK, CellLab
from support import kernel_inventory as snapshot

ISP_ADDRESS = "203.0.113.1/24"

_lab_counter = itertools.count(1)
_session_tag = uuid.uuid4().hex[:3]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.kernel)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="kernel tests need root"))


@pytest.fixture(scope="session", autouse=True)
def kernel_session() -> Iterator[Path]:
    """Serialise kernel test sessions across the machine and give the session its own run dir."""
    if os.geteuid() != 0:
        pytest.skip("kernel tests need root")
    KERNEL_LOCK.acquire()
    old = os.environ.get("TOPOLAB_RUN_DIR")
    run_dir = Path(tempfile.mkdtemp(prefix="topolab-kernel-run-"))
    os.environ["TOPOLAB_RUN_DIR"] = str(run_dir)
    try:
        yield run_dir
    finally:
        if old is None:
            os.environ.pop("TOPOLAB_RUN_DIR", None)
        else:
            os.environ["TOPOLAB_RUN_DIR"] = old
        subprocess.run(["rm", "-rf", "--one-file-system", str(run_dir)], check=False)
        KERNEL_LOCK.release()


# ---------------------------------------------------------------------------------------------- inventory guard


@pytest.fixture(autouse=True)
def inventory_guard() -> Iterator[None]:
    """Everything the test created must be gone afterwards: namespaces, root links, nft rules, daemons."""
    before = snapshot()
    yield
    after = snapshot()
    leaks = []
    for key in before:
        b, a = before[key], after[key]
        if isinstance(b, set):
            if a - b:  # type: ignore[operator]
                leaks.append(f"{key} left behind: {sorted(a - b)}")  # type: ignore[operator]
            if b - a:  # type: ignore[operator]
                leaks.append(f"{key} removed that existed before: {sorted(b - a)}")  # type: ignore[operator]
        elif a != b:
            leaks.append(f"{key} changed:\n--- before\n{b}\n--- after\n{a}")
    assert not leaks, "the test leaked:\n" + "\n".join(leaks)


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def lab_id() -> str:
    """A lab id unique to this test (8 chars max: 'k' + session tag + counter)."""
    return f"k{_session_tag}{next(_lab_counter):03d}"[:8]


def ns_exec(ns: str, argv: list[str], *, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
    """Run argv inside namespace `ns` (ip netns exec semantics, no shell)."""
    return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


@pytest.fixture(name="ns_exec")
def ns_exec_fixture() -> Callable[..., subprocess.CompletedProcess]:
    return ns_exec


@pytest.fixture
def deploy() -> Iterator[Callable]:
    """deploy(topology, lab, **kw) runs engine.up and makes sure engine.down(lab) runs after the test."""
    from netops import engine

    labs: list[str] = []

    def run(topology, lab: str, **kwargs):
        if lab not in labs:
            labs.append(lab)
        return engine.up(topology, lab, **kwargs)

    yield run
    errors = []
    for lab in labs:
        try:
            engine.down(lab)
        except Exception as exc:  # noqa: BLE001 - keep tearing down the others; report at the end
            errors.append(f"{lab}: {exc!r}")
    assert not errors, "down failed: " + "; ".join(errors)


@pytest.fixture
def isp_namespace() -> Iterator[dict[str, str]]:
    """An "ISP" namespace at 203.0.113.1/24 with NO route back to the labs' private ranges.

    Yields {"namespace", "ifname"}: `ifname` is a root-namespace veth end (the test moves or enslaves it, e.g. into
    a host bridge given to an `external` node); everything is removed afterwards.
    """
    name = f"tltest-isp{uuid.uuid4().hex[:6]}"
    br = f"tlbr{uuid.uuid4().hex[:6]}"
    outer = f"tlisp{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", br, "type", "bridge"], check=True)
        subprocess.run(["ip", "link", "set", br, "up"], check=True)
        subprocess.run(["ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", name],
                       check=True)
        subprocess.run(["ip", "link", "set", outer, "master", br, "up"], check=True)
        ns_exec(name, ["ip", "addr", "add", ISP_ADDRESS, "dev", "eth0"], check=True)
        ns_exec(name, ["ip", "link", "set", "eth0", "up"], check=True)
        ns_exec(name, ["ip", "link", "set", "lo", "up"], check=True)
        yield {"namespace": name, "bridge": br, "address": ISP_ADDRESS}
    finally:
        subprocess.run(["ip", "link", "del", outer], check=False)
        subprocess.run(["ip", "link", "del", br], check=False)
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def cell_lab(lab_id: str) -> Iterator[CellLab]:
    lab = CellLab(lab_id)
    try:
        yield lab
    finally:
        lab.remove()
