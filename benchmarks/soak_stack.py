"""The whole stack of a benchmark, private: Redis, a database, the Celery agent (root), the stream agent (consoles
and captures) and daphne, in a temp dir, with a staff user (token and session) and host bridges labs may attach to.

The soak's (benchmarks/soak.py). main's benchmarks/stack.py, made at the same time for deploy_latency.py and
deploy_multihost.py, is to replace it (not merged yet). Use:

    with Stack(bridges=1) as stack:
        lab = stack.create_lab("bench", document)
        run = stack.post(f"/api/labs/{lab.pk}/deploy")

Run as root under the kernel-test lock (`flock /run/topolab-kernel-tests.lock ...`): the agent makes kernel objects.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.1)


class Stack:
    """Context manager: starts everything on enter (Django is set up in this process against the private database
    and Redis), stops what it started, by process group, and removes its bridges and temp dir on exit."""

    def __init__(self, *, bridges: int = 1, stream_agent: bool = False, beat: bool = False,
                 keep_logs: bool = False, concurrency: int = 2, env: dict[str, str] | None = None) -> None:
        self.keep_logs, self.concurrency, self.beat, self.with_stream_agent = keep_logs, concurrency, beat, stream_agent
        self.tmp = Path(tempfile.mkdtemp(prefix="topolab-bench-"))
        self.tmp.chmod(0o711)  # the lab's processes (its own uids) reach their cell dir under tmp/run
        tag = os.urandom(3).hex()
        self.bridges = [f"tlbench{tag}{i}" if bridges > 1 else f"tlbench{tag}" for i in range(bridges)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(self.tmp / "db.sqlite3"),
                        TOPOLAB_REDIS_URL=f"unix://{self.tmp / 'redis.sock'}",
                        TOPOLAB_SECRET_KEY="bench-" + os.urandom(16).hex(), TOPOLAB_RUN_DIR=str(self.tmp / "run"),
                        TOPOLAB_AGENT_QUEUE="agent", TOPOLAB_QUOTA_USER_NODES="0",
                        TOPOLAB_QUOTA_USER_RUNNING_LABS="0", TOPOLAB_UPLINK_BRIDGES=",".join(self.bridges),
                        TOPOLAB_THROTTLE_DEPLOY="100000/minute", TOPOLAB_THROTTLE_STATUS="100000/minute",
                        PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore::celery.platforms.SecurityWarning")
        self.env.update(env or {})
        self.env.pop("TOPOLAB_DEBUG", None)
        self.base = ""
        self.port = 0
        self.token = ""
        self.session_key = ""
        self.user: Any = None

    # ------------------------------------------------------------------------------------------- start and stop

    def _spawn(self, argv: list[str], name: str) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        os.environ.update(self.env)
        sock = self.tmp / "redis.sock"
        self._spawn(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
                     "--dir", str(self.tmp)], "redis")
        wait_until(sock.exists, 10, "redis")

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from django.core.management import call_command
        from rest_framework.authtoken.models import Token

        from webapp.celery import app
        from webapp.runs.parts import host_queue

        call_command("migrate", verbosity=0)
        # staff: may attach a lab's uplink to the allowed bridges
        self.user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex(), is_staff=True)
        self.token = Token.objects.create(user=self.user).key
        session = SessionStore()
        session["_auth_user_id"] = str(self.user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = self.user.get_session_auth_hash()
        session.create()
        self.session_key = session.session_key

        from django.conf import settings

        app.conf.update(broker_url=f"redis+socket://{sock}", result_backend=f"redis+socket://{sock}")
        worker = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q",
                  f"agent,{host_queue(settings.TOPOLAB_HOST)}", "-n", "bench@localhost", "--concurrency",
                  str(self.concurrency), "--loglevel", "INFO" if self.keep_logs else "WARNING", "--without-gossip",
                  "--without-mingle"]
        if self.beat:  # as `make run` starts it: the health check and the prune of old events
            worker += ["-B", "-s", str(self.tmp / "celerybeat-schedule")]
        # The host's KVM decision (netops.qemu.accel_info, cached in the run root) made before the agent starts, as
        # tests/chaos does: else the agent probes with a qemu in the background while a benchmark takes its inventory
        from netops import qemu

        qemu.accel_info()
        self._spawn(worker, "worker")
        wait_until(lambda: bool(app.control.ping(destination=["bench@localhost"], timeout=0.5)), 60, "worker")
        if self.with_stream_agent:
            from asgiref.sync import async_to_sync

            from webapp.consoles import services

            self._spawn([sys.executable, "-m", "webapp.agent"], "stream-agent")

            def answers() -> bool:
                try:
                    async_to_sync(services.ask_agent)({"type": "agent.ping"}, timeout=1)
                    return True
                except services.AgentUnavailable:
                    return False

            wait_until(answers, 30, "the stream agent")
        self.port = free_port()
        self._spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                     "webapp.asgi:application"], "daphne")
        self.base = f"http://127.0.0.1:{self.port}"

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return True
            except OSError:
                return False

        wait_until(up, 30, "daphne")

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "del", bridge], check=False, stderr=subprocess.DEVNULL)
        if self.keep_logs:
            print(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------------------------------------ the API

    def create_lab(self, name: str, document: dict) -> Any:
        from webapp.labs.models import Lab

        return Lab.objects.create(owner=self.user, name=name, document=document)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30) -> Any:
        """The JSON answer of one API call with the stack's token (urllib raises HTTPError on a 4xx/5xx)."""
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        headers = {"Authorization": f"Token {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw

    def post(self, path: str, body: dict | None = None) -> Any:
        return self.request("POST", path, body)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def ws_headers(self) -> dict[str, str]:
        """Headers of a browser's WebSocket (the session cookie; pass origin=self.base as well)."""
        return {"Cookie": f"sessionid={self.session_key}"}
