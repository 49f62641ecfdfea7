"""The benchmarks' private Topolab stack: Redis, an SQLite database, daphne and Celery agents of their own in a temp
dir, stopped (by pid) and removed when the `with` block ends, also after a failure.

    with Stack(env={"TOPOLAB_UPLINK_BRIDGES": bridge}) as stack:
        stack.start_agent("bench")                    # one agent (root) on the shared queue `agent`
        lab = Lab.objects.create(owner=stack.user, ...)
        run = stack.post(f"/api/labs/{lab.pk}/deploy")
        async with stack.websocket(lab.pk) as ws: ...

`Stack(bridges=n)` also makes n host bridges that labs may attach their uplinks to (`stack.bridges`), removed at the
end; `start_agent(..., beat=True)` runs Celery beat in the agent as `make run` does (the health check, the prune of
old events); `start_stream_agent()` starts the consoles' and captures' agent.

Entering it sets this process's environment to the stack's (os.environ) and runs django.setup(): the benchmark
reads and writes the same database as the agents and the web tier. The host's VM accelerator decision
(netops.qemu.accel_info, cached in the run root) is made before any agent starts, as tests/chaos does: else an
agent probes with a qemu in the background while a benchmark takes its inventory. Used by deploy_latency.py,
deploy_multihost.py and soak.py; run them as root (the agents make kernel objects).
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
sys.path.insert(0, str(REPO))  # this checkout's webapp and netops, as the agents' PYTHONPATH says


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
    """Redis, database (migrated, one staff user with a token and a browser session) and daphne; agents on demand."""

    def __init__(self, *, env: dict[str, str] | None = None, keep_logs: bool = False, prefix: str = "topolab-bench-",
                 bridges: int = 0):
        self.keep_logs = keep_logs
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.tmp.chmod(0o711)  # the lab's processes (its own uids) reach their cell dir under tmp/run
        tag = os.urandom(3).hex()
        self.bridges = [f"tlbench{tag}{i}" if bridges > 1 else f"tlbench{tag}" for i in range(bridges)]
        if self.bridges:
            env = {"TOPOLAB_UPLINK_BRIDGES": ",".join(self.bridges), **(env or {})}
        sock = self.tmp / "redis.sock"
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="webapp.settings", TOPOLAB_DB=str(self.tmp / "db.sqlite3"),
                        TOPOLAB_REDIS_URL=f"unix://{sock}", TOPOLAB_SECRET_KEY="bench-" + os.urandom(16).hex(),
                        TOPOLAB_RUN_DIR=str(self.tmp / "run"), TOPOLAB_AGENT_QUEUE="agent",
                        TOPOLAB_QUOTA_USER_NODES="0", TOPOLAB_QUOTA_USER_RUNNING_LABS="0",
                        TOPOLAB_THROTTLE_DEPLOY="100000/minute", TOPOLAB_THROTTLE_STATUS="100000/minute",
                        PYTHONPATH=str(REPO),
                        PYTHONWARNINGS="ignore::celery.platforms.SecurityWarning", **(env or {}))
        self.env.pop("TOPOLAB_DATABASE_URL", None)  # the private SQLite file, never a database of the machine's
        self.env.pop("TOPOLAB_DEBUG", None)
        self.procs: list[subprocess.Popen] = []
        self.named: dict[str, subprocess.Popen] = {}  # the last process started under each name
        self.base = ""
        self.port = 0
        self.token = ""
        self.session_key = ""
        self.user: Any = None

    # -------------------------------------------------------------------------------------------- processes

    def spawn(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.tmp / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=REPO, env={**self.env, **(env or {})}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        self.named[name] = proc
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 30) -> None:
        """End `proc` and its process group (SIGTERM, then SIGKILL)."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what the worker's pool left behind
        except ProcessLookupError:
            pass
        proc.wait(10)

    def start_agent(self, name: str, queue: str = "agent", env: dict[str, str] | None = None,
                    concurrency: int = 2, beat: bool = False) -> subprocess.Popen:
        """A Celery agent (as root) consuming `queue` (and agent.<TOPOLAB_HOST>), once it answers a ping; `beat`:
        with Celery beat in it, as `make run` starts it."""
        from webapp.celery import app

        node = f"{name}@localhost"
        argv = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queue, "-n", node,
                "--concurrency", str(concurrency), "--loglevel", "INFO" if self.keep_logs else "WARNING",
                "--without-gossip", "--without-mingle"]
        if beat:
            argv += ["-B", "-s", str(self.tmp / f"{name}-celerybeat-schedule")]
        proc = self.spawn(argv, name, env={"TOPOLAB_AGENT_QUEUE": queue, **(env or {})})

        def answers() -> bool:
            if proc.poll() is not None:
                raise SystemExit(f"agent {name} exited: {(self.tmp / f'{name}.log').read_text()[-3000:]}")
            return bool(app.control.ping(destination=[node], timeout=0.5))

        wait_until(answers, 60, f"agent {name}")
        return proc

    def start_stream_agent(self, name: str = "stream-agent") -> subprocess.Popen:
        """The stream agent (`python -m webapp.agent`: consoles and captures), once it answers a ping."""
        from asgiref.sync import async_to_sync

        from webapp.consoles import services

        proc = self.spawn([sys.executable, "-m", "webapp.agent"], name)

        def answers() -> bool:
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-3000:]}")
            try:
                async_to_sync(services.ask_agent)({"type": "agent.ping"}, timeout=1)
                return True
            except services.AgentUnavailable:
                return False

        wait_until(answers, 30, name)
        return proc

    # -------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        os.environ.update(self.env)
        os.environ.pop("TOPOLAB_DATABASE_URL", None)
        sock = self.tmp / "redis.sock"
        self.spawn(["redis-server", "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
                    "--dir", str(self.tmp)], "redis")
        wait_until(sock.exists, 10, "redis")

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from django.core.management import call_command
        from rest_framework.authtoken.models import Token

        from webapp.celery import app

        call_command("migrate", verbosity=0)
        # staff: may attach a lab's uplink to an allowed host bridge
        self.user = get_user_model().objects.create_user("bench", password=os.urandom(8).hex(), is_staff=True)
        self.token = Token.objects.create(user=self.user).key
        session = SessionStore()
        session["_auth_user_id"] = str(self.user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = self.user.get_session_auth_hash()
        session.create()
        self.session_key = session.session_key
        app.conf.update(broker_url=f"redis+socket://{sock}", result_backend=f"redis+socket://{sock}")
        from netops import qemu

        qemu.accel_info()  # before any agent starts (module docstring)
        self.port = free_port()
        self.spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                    "webapp.asgi:application"], "daphne")
        self.base = f"http://127.0.0.1:{self.port}"

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                return True
            except OSError:
                return False

        wait_until(up, 30, "daphne")

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc, timeout=20)
        self.procs.clear()
        for bridge in self.bridges:
            subprocess.run(["ip", "link", "del", bridge], check=False, stderr=subprocess.DEVNULL)
        if self.keep_logs:
            print(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------------------------------------------- the API

    def create_lab(self, name: str, document: dict) -> Any:
        from webapp.labs.models import Lab

        return Lab.objects.create(owner=self.user, name=name, document=document)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> Any:
        """The answer of one API call with the stack's token: JSON decoded, anything else as bytes (urllib raises
        HTTPError on a 4xx/5xx)."""
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        headers = {"Authorization": f"Token {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read()
            return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw

    def post(self, path: str, timeout: float = 60, body: dict | None = None) -> Any:
        return self.request("POST", path, body, timeout)

    def get(self, path: str, timeout: float = 60) -> Any:
        return self.request("GET", path, None, timeout)

    def ws_headers(self) -> dict[str, str]:
        """Headers of a browser's WebSocket (the session cookie; pass origin=self.base as well)."""
        return {"Cookie": f"sessionid={self.session_key}"}

    def websocket(self, lab_pk: int):
        """The lab's event stream as a browser opens it (its session cookie and origin): `async with`."""
        import websockets

        return websockets.connect(f"ws://127.0.0.1:{self.port}/ws/labs/{lab_pk}/", origin=self.base, max_size=None,
                                  additional_headers=self.ws_headers())
