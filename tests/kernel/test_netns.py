"""netops.kernel.netns against the real kernel: many namespaces created at once, and what is left when some fail."""
from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from netops.kernel import netns


def _names(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"tltest-cm{tag}-{i}" for i in range(count)]


def _own_net_ns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


@contextmanager
def _spaces(names: list[str], keep: tuple[str, ...] = ()) -> Iterator[netns.Namespaces]:
    """A Namespaces for the test; afterwards it is closed and every name but `keep` is deleted."""
    spaces = netns.Namespaces()
    try:
        yield spaces
    finally:
        spaces.close()
        for name in names:
            if name not in keep:
                netns.delete(name)


def test_create_many_runs_each_job_inside_its_own_new_namespace():
    names = _names(12)
    host = _own_net_ns()
    with _spaces(names) as spaces:
        futures = spaces.create_many([(n, _own_net_ns) for n in names], workers=2)
        seen = [f.result(timeout=30) for f in futures]
        assert host not in seen
        assert len(set(seen)) == len(names)  # one namespace each
        for name, ns_id in zip(names, seen, strict=True):
            assert os.path.ismount(netns.path(name))
            # the job ran in the namespace now pinned under that name
            assert spaces.run_in(name, _own_net_ns) == ns_id
        assert _own_net_ns() == host  # the caller never left the host namespace


def test_a_taken_name_fails_only_its_own_namespace_and_is_left_alone():
    names = _names(6)
    foreign = names[3]
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        with _spaces(names, keep=(foreign,)) as spaces:
            futures = spaces.create_many([(n, _own_net_ns) for n in names], workers=2)
            for name, fut in zip(names, futures, strict=True):
                if name == foreign:
                    with pytest.raises(FileExistsError):
                        fut.result(timeout=30)
                else:
                    assert fut.result(timeout=30)
                    assert os.path.ismount(netns.path(name))
            spaces.close()
            assert os.path.ismount(netns.path(foreign))  # still the foreign one, still mounted
    finally:
        subprocess.run(["ip", "netns", "del", foreign], check=True)


def test_a_mount_point_left_empty_by_a_killed_creator_is_made_again():
    """The chaos suite's kill of the agent during a 100-host deploy left empty mount points (made ahead) behind,
    and the redeploy failed with "File exists"."""
    names = _names(4)
    left = names[2]
    with _spaces(names) as spaces:
        netns._make_mount_point(left)  # a file, nothing mounted on it: what the killed agent left
        assert not os.path.ismount(netns.path(left))
        futures = spaces.create_many([(n, _own_net_ns) for n in names], workers=2)
        seen = [f.result(timeout=30) for f in futures]
        assert len(set(seen)) == len(names)
        assert all(os.path.ismount(netns.path(n)) for n in names)
        assert spaces.run_in(left, _own_net_ns) == seen[2]


def test_a_failing_job_fails_its_own_future_only_and_workers_return_home():
    names = _names(6)
    host = _own_net_ns()

    def job_for(name: str):
        def job() -> str:
            if name == names[2]:
                raise ValueError("job refused")
            return _own_net_ns()
        return job

    with _spaces(names) as spaces:
        futures = spaces.create_many([(n, job_for(n)) for n in names], workers=2)
        with pytest.raises(ValueError, match="job refused"):
            futures[2].result(timeout=30)
        others = [f.result(timeout=30) for i, f in enumerate(futures) if i != 2]
        assert host not in others and len(set(others)) == len(names) - 1
        assert all(os.path.ismount(netns.path(n)) for n in names)  # made; that job failed afterwards
        # both workers are back in the host namespace: a job without a namespace runs there
        assert spaces._submit(None, _own_net_ns) == host
        assert all(spaces._put(w, None, _own_net_ns).result(timeout=30) == host for w in spaces._helpers)


def test_mount_points_made_but_never_used_are_removed_on_close():
    names = _names(20)
    before = set(netns.list_names())
    mount_points = netns._MountPoints(names)
    mount_points.start()
    mount_points.results[names[-1]].result(timeout=30)  # all made by now
    assert set(names) <= set(netns.list_names())
    mount_points.close()
    assert set(netns.list_names()) == before


def test_an_untagged_namespace_of_the_labs_own_cell_is_made_again_and_a_foreign_one_is_not(kernel_lock):
    """The full chaos run's second finding: the agent killed after it had mounted a 100-host lab's h25 namespace
    but before it tagged it; the redeploy planned h25 fresh (an untagged namespace is not counted as the lab's) and
    failed with "File exists". A namespace under the name whose owner is the lab's own user namespace is the lab's:
    it is made again, one by one and in create_many alike. One of the host's under a lab's name still fails."""
    from support import CellLab

    from netops import naming
    from netops.kernel import userns

    lab = CellLab(f"nx{uuid.uuid4().hex[:6]}")
    try:
        left, many = lab.ns("h25"), [lab.ns(f"h{i}") for i in (1, 2)]
        old = {n: os.stat(netns.path(n)).st_ino for n in [left, *many]}  # each namespace's inode, as mounted now
        cells = netns.CellNamespaces(lab.cell.ids(), list(lab.namespaces))
        with netns.Namespaces(cell=cells) as spaces:
            spaces.create(left, _own_net_ns)  # no FileExistsError: made again in the cell
            futures = spaces.create_many([(n, _own_net_ns) for n in many], workers=2)
            assert all(f.result(timeout=30) for f in futures)
        for n in [left, *many]:
            assert os.path.ismount(netns.path(n)) and os.stat(netns.path(n)).st_ino != old[n], n
            owner = userns.owner_fd(netns.path(n))
            try:
                assert os.fstat(owner).st_ino != userns.initial_inode()  # still in the lab's cell
            finally:
                os.close(owner)
        foreign = naming.node_namespace(lab.lab, "h9")
        subprocess.run(["ip", "netns", "add", foreign], check=True)  # the host's, under the lab's name
        try:
            with netns.Namespaces(cell=netns.CellNamespaces(lab.cell.ids(), list(lab.namespaces))) as spaces:
                with pytest.raises(FileExistsError):
                    spaces.create(foreign, _own_net_ns)
            assert os.path.ismount(netns.path(foreign))
        finally:
            subprocess.run(["ip", "netns", "del", foreign], check=True)
    finally:
        lab.remove()
