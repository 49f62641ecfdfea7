"""How long a redeploy that changes nothing that runs takes through the agent (issue 18): a description-only, a
position-only and an unchanged redeploy of a running lab, each timed from the run's `run.started` event to its
`run.finished` (the agent's own work: observing the lab, planning, recording; the queue's dispatch latency before
run.started is benchmarks/deploy_latency.py's). Also one node action (stop and start of a host) for scale.

Starts its own private Redis, database and Celery agent (root) in a temp dir; runs are started as the web tier
starts them (webapp.runs.services). Prints median and max of --repeat runs of each.
Usage: sudo flock /run/topolab-kernel-tests.lock .venv/bin/python benchmarks/noop_redeploy.py [--hosts 3] [--repeat 10]
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def document(hosts: int) -> dict:
    """A router serving DHCP on a bridge, a static host, and `hosts - 1` more hosts (the seed lab, without uplink)."""
    nodes: dict = {
        "r1": {"kind": "router", "description": "the gateway", "ui": {"x": 300, "y": 100}, "interfaces": {
            "eth0": {"address": "10.0.1.254/24", "dhcp_server": {"range": "10.0.1.100-10.0.1.150"}}}},
        "sw": {"kind": "bridge", "ui": {"x": 300, "y": 250}},
        "h1": {"kind": "host", "interfaces": {"eth0": {"address": "dhcp"}}, "ui": {"x": 150, "y": 400}},
    }
    links = [{"endpoints": ["r1:eth0", "sw"]}, {"endpoints": ["h1:eth0", "sw"]}]
    for i in range(2, hosts + 1):
        nodes[f"h{i}"] = {"kind": "host", "interfaces": {"eth0": {"address": f"10.0.1.{i}/24"}}}
        links.append({"endpoints": [f"h{i}:eth0", "sw"]})
    return {"version": 1, "name": "noop-bench", "nodes": nodes, "links": links}


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3, help="hosts on the bridge besides the router")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the agent needs root")
    tmp = Path(tempfile.mkdtemp(prefix="topolab-noop-"))
    tmp.chmod(0o711)  # the lab's uid passes through to its cell dir under run/
    procs: list[subprocess.Popen] = []
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(tmp / "db.sqlite3"),
               TOPOLAB_REDIS_URL=f"unix://{tmp / 'redis.sock'}", TOPOLAB_SECRET_KEY="bench-" + os.urandom(16).hex(),
               TOPOLAB_RUN_DIR=str(tmp / "run"), TOPOLAB_AGENT_QUEUE="agent",
               TOPOLAB_QUOTA_USER_NODES="0", TOPOLAB_QUOTA_USER_RUNNING_LABS="0",
               PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore::celery.platforms.SecurityWarning")
    os.environ.update(env)

    def spawn(argv: list[str], name: str) -> subprocess.Popen:
        log = open(tmp / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    lab = None
    try:
        spawn(["redis-server", "--port", "0", "--unixsocket", str(tmp / "redis.sock"), "--save", "",
               "--appendonly", "no", "--dir", str(tmp)], "redis")
        wait_until(lambda: (tmp / "redis.sock").exists(), 10, "redis")
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from webapp.celery import app
        from webapp.labs.models import Lab
        from webapp.runs import services
        from webapp.runs.models import Run, RunEvent

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex())
        lab = Lab.objects.create(owner=user, name="bench", document=document(args.hosts))
        app.conf.update(broker_url=f"redis+socket://{tmp / 'redis.sock'}",
                        result_backend=f"redis+socket://{tmp / 'redis.sock'}")
        spawn([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "agent", "-n", "noop@localhost",
               "--concurrency", "1", "--loglevel", "WARNING", "--without-gossip", "--without-mingle"], "worker")
        wait_until(lambda: bool(app.control.ping(destination=["noop@localhost"], timeout=0.5)), 60, "worker")

        def run(kind: str, action: dict | None = None) -> tuple[float, int]:
            """(run.started -> run.finished in seconds, steps) of one run."""
            started = services.start_action(lab, user, action) if action else services.start_run(lab, user, kind)
            # the run's last event is stored just after its status: wait for that
            wait_until(lambda: RunEvent.objects.filter(run_id=started.pk, type__in=["run.finished", "run.failed"])
                       .exists(), 120, f"{kind} run")
            done = Run.objects.get(pk=started.pk)
            if done.status != "succeeded":
                raise SystemExit(f"{kind} failed: {done.error}")
            ts = dict(RunEvent.objects.filter(run=done, type__in=["run.started", "run.finished"])
                      .values_list("type", "ts"))
            steps = RunEvent.objects.filter(run=done, type="run.step").count()
            return (ts["run.finished"] - ts["run.started"]).total_seconds(), steps

        first, steps = run("deploy")
        print(f"lab of {len(lab.document['nodes'])} nodes ({lab.lab_id}): first deploy {first:.2f} s, {steps} steps")
        results: dict[str, list[float]] = {"unchanged": [], "description only": [], "position only": []}
        for i in range(args.repeat):
            results["unchanged"].append(run("deploy")[0])
            doc = copy.deepcopy(lab.document)
            doc["nodes"]["r1"]["description"] = f"the gateway, take {i}"
            Lab.objects.filter(pk=lab.pk).update(document=doc, version=lab.version + 1)
            lab.refresh_from_db()
            seconds, steps = run("deploy")
            assert steps == 0, f"a description-only redeploy ran {steps} steps"
            results["description only"].append(seconds)
            doc = copy.deepcopy(lab.document)
            doc["nodes"]["h1"]["ui"] = {"x": 150 + i, "y": 400}
            Lab.objects.filter(pk=lab.pk).update(document=doc, version=lab.version + 1)
            lab.refresh_from_db()
            seconds, steps = run("deploy")
            assert steps == 0, f"a position-only redeploy ran {steps} steps"
            results["position only"].append(seconds)
        for name, values in results.items():
            print(f"{name} redeploy: run.started -> run.finished median {statistics.median(values) * 1000:.0f} ms, "
                  f"max {max(values) * 1000:.0f} ms (n={len(values)})")
        stop = run("action", {"action": "stop", "node": "h2"})[0] if args.hosts >= 2 else None
        start = run("action", {"action": "start", "node": "h2"})[0] if args.hosts >= 2 else None
        if stop is not None and start is not None:
            print(f"stop h2: {stop * 1000:.0f} ms, start h2: {start * 1000:.0f} ms (run.started -> run.finished)")
    finally:
        if lab is not None:
            from netops import engine

            engine.down(lab.lab_id)
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
