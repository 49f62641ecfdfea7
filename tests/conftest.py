"""Session-wide test services: one private Redis and a test database per pytest run: a SQLite file, or with
--postgres a throw-away PostgreSQL cluster (initdb in a temp dir of its own, unix socket only, stopped at the end).

pytest-django imports the settings before this file is loaded, so pytest_configure patches the
Redis-derived settings in place (webapp.settings.redis_settings) and exports the same values as
environment variables for subprocesses (a Celery worker, daphne) that the fixtures start.
Everything lives in a fresh temp dir, so two runs in one work tree never share Redis or a database.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import KERNEL_LOCK

REPO = Path(__file__).resolve().parent.parent


@dataclass
class TestServices:
    tmpdir: Path
    redis_url: str | None
    redis_proc: subprocess.Popen | None
    test_db: Path
    postgres: Postgres | None = None


@dataclass
class Postgres:
    """A private PostgreSQL server: its directory (data/ and the socket; only its owner may enter), the server
    process, and the URL of the test database that pytest-django creates in it (the subprocesses' database)."""

    dir: Path
    proc: subprocess.Popen
    url: str
    test_url: str


_services: TestServices | None = None


def _die_with_pytest() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child if pytest dies, even by SIGKILL."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None,
          new_session: bool = False, cwd: Path = REPO, **popen) -> subprocess.Popen:
    """Start a test service: output to log_path, killed with pytest if pytest itself dies. `popen`: more Popen
    arguments (user=, group=: the death signal is set after the switch, so it holds for the new user too)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_pytest, start_new_session=new_session, **popen,
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--postgres", action="store_true",
                     help="run the Django tests against a private PostgreSQL server instead of SQLite "
                          "(initdb in a temp dir; Debian's postgresql package)")


POSTGRES_USER = "topolab"  # the cluster's superuser (initdb -U); trust on the unix socket, whose directory is 0700


def _postgres_bindir() -> Path:
    """The server binaries: on PATH, else Debian's /usr/lib/postgresql/<newest>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise pytest.UsageError("--postgres: initdb not found (make setup installs Debian's postgresql package)")
    return versions[-1].parent


def _postgres_owner() -> dict:
    """Popen arguments that run the server as an unprivileged user: initdb and postgres refuse to run as root. As
    root, Debian's `postgres` system user (else nobody); otherwise the current user."""
    if os.geteuid() != 0:
        return {}
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise pytest.UsageError("--postgres: as root the server needs an unprivileged user (postgres or nobody)")


def _start_postgres(tmpdir: Path) -> Postgres:
    """initdb a cluster in a fresh directory (owned by the server's user, 0700: the socket in it is reachable by
    that user and root only, so trust authentication admits nobody else), start it on that socket alone (no TCP),
    without fsync (throw-away data), and wait until it answers."""
    from urllib.parse import quote

    import psycopg

    bindir, owner = _postgres_bindir(), _postgres_owner()
    pgdir = Path(tempfile.mkdtemp(prefix="topolab-test-pg-"))
    if owner:
        os.chown(pgdir, owner["user"], owner["group"])
    log_path = tmpdir / "postgres.log"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    with open(log_path, "ab") as log:
        initdb = subprocess.run(
            [str(bindir / "initdb"), "-D", str(pgdir / "data"), "-U", POSTGRES_USER, "--auth=trust", "--no-sync",
             "-E", "UTF8", "--locale=C", "--no-instructions"],
            cwd=pgdir, env=env, stdout=log, stderr=subprocess.STDOUT, check=False, **owner)
    if initdb.returncode != 0:
        shutil.rmtree(pgdir, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({initdb.returncode}): {log_path.read_text()}")
    proc = spawn(
        [str(bindir / "postgres"), "-D", str(pgdir / "data"), "-k", str(pgdir), "-c", "listen_addresses=",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200", "-c", "log_min_messages=warning"],
        log_path=log_path, env=env, cwd=pgdir, **owner,
    )
    host = quote(str(pgdir), safe="")
    pg = Postgres(pgdir, proc, f"postgres://{POSTGRES_USER}@{host}/topolab",
                  f"postgres://{POSTGRES_USER}@{host}/test_topolab")
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            shutil.rmtree(pgdir, ignore_errors=True)
            raise RuntimeError(f"postgres exited with {proc.returncode}: {log_path.read_text()}")
        try:
            psycopg.connect(host=str(pgdir), dbname="postgres", user=POSTGRES_USER, connect_timeout=2).close()
            return pg
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            _stop_postgres(pg)
            raise RuntimeError("postgres did not accept a connection within 30 s")
        time.sleep(0.1)


def _stop_postgres(pg: Postgres) -> None:
    """Fast shutdown (SIGINT: ends the sessions, then the server), then the cluster's directory goes."""
    if pg.proc.poll() is None:
        pg.proc.send_signal(signal.SIGINT)
        try:
            pg.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pg.proc.kill()
            pg.proc.wait()
    shutil.rmtree(pg.dir, ignore_errors=True)


def _start_redis(tmpdir: Path) -> subprocess.Popen:
    sock = tmpdir / "redis.sock"
    proc = spawn(
        [
            "redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(tmpdir), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--loglevel", "warning",
        ],
        log_path=tmpdir / "redis.log",
    )
    import redis

    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(tmpdir / 'redis.log').read_text()}")
        try:
            if sock.exists() and redis.Redis(unix_socket_path=str(sock)).ping():
                return proc
        except redis.exceptions.ConnectionError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("redis-server did not answer PING within 15 s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pytest_configure(config: pytest.Config) -> None:
    global _services
    if _services is not None or hasattr(config, "workerinput"):
        return
    tmpdir = Path(tempfile.mkdtemp(prefix="topolab-test-"))
    redis_proc = _start_redis(tmpdir) if shutil.which("redis-server") else None
    redis_url = f"unix://{tmpdir / 'redis.sock'}" if redis_proc else None
    _services = TestServices(tmpdir, redis_url, redis_proc, tmpdir / "test_db.sqlite3")
    if config.getoption("postgres", False):
        _services.postgres = _start_postgres(tmpdir)
        # a subprocess started without topolab_subprocess_env must not reach a database outside this run either
        os.environ["TOPOLAB_DATABASE_URL"] = _services.postgres.test_url

    os.environ["TOPOLAB_TEST_DB"] = str(_services.test_db)
    _make_capture_dir()
    if redis_url:
        os.environ["TOPOLAB_REDIS_URL"] = redis_url
    _patch_django_settings()


def _patch_django_settings() -> None:
    """Point already-imported settings (and the Celery app) at this run's Redis and test DB."""
    assert _services is not None
    try:
        from django.conf import settings

        if not settings.configured:
            return
        from webapp import settings as topolab_settings
    except ImportError:
        return
    if _services.postgres is not None:
        _use_database(settings, topolab_settings.database_settings(_services.postgres.url))
    else:
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(_services.test_db)
    if _services.redis_url:
        for key, value in topolab_settings.redis_settings(_services.redis_url).items():
            setattr(settings, key, value)
        from webapp.celery import app

        app.conf.update(
            broker_url=settings.CELERY_BROKER_URL, result_backend=settings.CELERY_RESULT_BACKEND
        )
    # Subprocesses must sign and read session cookies with the same key as this process.
    os.environ["TOPOLAB_SECRET_KEY"] = settings.SECRET_KEY


def _use_database(settings, default: dict) -> None:
    """Point the default database elsewhere, with Django's defaults filled in again. The SQLite connection object
    that django.setup() may have made is dropped (no test has used it yet)."""
    from django.db import connections

    if hasattr(connections._connections, "default"):
        connections["default"].close()
        del connections["default"]
    settings.DATABASES["default"] = default
    connections.configure_settings(settings.DATABASES)
    connections.__dict__.pop("settings", None)  # ConnectionHandler.settings is a cached_property


_capture_dir: Path | None = None


def _make_capture_dir() -> None:
    """This run's pcap directory (TOPOLAB_CAPTURE_DIR), apart from var/captures. Mode 0711, like the real one:
    tcpdump, dropped to its own user, must reach the file the agent made for it."""
    global _capture_dir
    _capture_dir = Path(tempfile.mkdtemp(prefix="topolab-test-captures-"))
    _capture_dir.chmod(0o711)
    os.environ["TOPOLAB_CAPTURE_DIR"] = str(_capture_dir)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _services, _capture_dir
    if _capture_dir is not None:
        shutil.rmtree(_capture_dir, ignore_errors=True)
        _capture_dir = None
    if _services is None:
        return
    if _services.redis_proc is not None:
        _stop(_services.redis_proc)
    if _services.postgres is not None:
        from django.db import connections

        connections.close_all()
        _stop_postgres(_services.postgres)
    shutil.rmtree(_services.tmpdir, ignore_errors=True)
    _services = None


@pytest.fixture(scope="session")
def redis_server() -> str:
    """URL (unix:///...sock) of this run's private redis-server; settings already point at it."""
    if _services is None or _services.redis_url is None:
        pytest.fail("redis-server is not installed (make setup installs it)")
    return _services.redis_url


class RedisControl:
    """SIGKILL and restart this run's Redis (the chaos suite: a crash of the broker and channel layer). The new
    server listens on the same socket, empty, as a restarted Redis without persistence is."""

    def kill(self) -> None:
        assert _services is not None and _services.redis_proc is not None
        _services.redis_proc.kill()
        _services.redis_proc.wait(10)

    def restart(self) -> None:
        assert _services is not None
        (_services.tmpdir / "redis.sock").unlink(missing_ok=True)
        _services.redis_proc = _start_redis(_services.tmpdir)
        # this process's broker connections (Celery's pool, as control.ping uses it) point at the dead server
        from kombu import pools

        from webapp.celery import app

        pools.reset()  # closes every pooled connection and forgets the pools, as after a fork
        app._after_fork()


@pytest.fixture(scope="session")
def redis_control(redis_server: str) -> RedisControl:
    return RedisControl()


@pytest.fixture(scope="session")
def topolab_subprocess_env(redis_server: str) -> dict[str, str]:
    """Environment for a subprocess (worker, daphne, CLI) that must see the test DB and Redis."""
    from django.conf import settings

    assert _services is not None
    env = dict(os.environ)
    if _services.postgres is not None:  # the test database pytest-django made in the private cluster
        env["TOPOLAB_DATABASE_URL"] = _services.postgres.test_url
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        TOPOLAB_DB=str(_services.test_db),
        TOPOLAB_REDIS_URL=redis_server,
        TOPOLAB_SECRET_KEY=settings.SECRET_KEY,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    return env


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's, and on PostgreSQL: before it drops the test database, end the sessions that threads of the
    tests left open (sync_to_async's thread pool keeps its connections), which would make the DROP fail."""
    yield
    if _services is not None and _services.postgres is not None:
        import psycopg

        with psycopg.connect(host=str(_services.postgres.dir), dbname="postgres", user=POSTGRES_USER,
                             autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = 'test_topolab' AND pid <> pg_backend_pid()")


@pytest.fixture(scope="session", name="spawn")
def spawn_fixture():
    """spawn(argv, log_path=..., env=..., new_session=False) -> Popen, dying with pytest.

    The caller still stops what it started (by pid) in its own fixture teardown.
    """
    return spawn


@pytest.fixture(scope="session")
def test_tmpdir() -> Path:
    """This run's private temp dir (Redis socket, test DB, subprocess logs); removed at the end."""
    assert _services is not None
    return _services.tmpdir


@pytest.fixture(scope="session")
def stream_agent(django_db_setup, topolab_subprocess_env, test_tmpdir, spawn):
    """A real `python -m webapp.agent` (consoles and captures) against the test Redis and DB, as the current user
    (root for console and capture tests). Yields its own channel name. Log: <test_tmpdir>/stream-agent.log, copied
    to $TOPOLAB_KEEP_AGENT_LOG at the end when that is set (the temp dir itself is removed)."""
    import sys

    from asgiref.sync import async_to_sync

    from webapp.consoles import services

    log_path = test_tmpdir / "stream-agent.log"
    proc = spawn([sys.executable, "-m", "webapp.agent"], log_path=log_path, env=topolab_subprocess_env)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the stream agent exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                reply = async_to_sync(services.ask_agent)({"type": "agent.ping"}, timeout=1)
                break
            except services.AgentUnavailable:
                if time.monotonic() > deadline:
                    pytest.fail(f"the stream agent did not answer within 30 s:\n{log_path.read_text()}")
        yield reply["agent"]
    finally:
        _stop(proc)
        if os.environ.get("TOPOLAB_KEEP_AGENT_LOG"):
            shutil.copy(log_path, os.environ["TOPOLAB_KEEP_AGENT_LOG"])


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Rate-limit counters (DRF throttles) live in this process's cache: every test starts without any."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def kernel_lock():
    """Hold the machine-wide kernel-test lock (support.KERNEL_LOCK) while this test makes kernel objects."""
    with KERNEL_LOCK.held():
        yield


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, topolab_subprocess_env, test_tmpdir, spawn):
    """A real `celery -A webapp worker -Q agent,agent.<host>` subprocess (the host: TOPOLAB_HOST as the settings
    have it), running as the current user; it announces its host every few seconds (webapp.hosts).

    It reads the same test database file, so a test that uses it must be marked
    `@pytest.mark.django_db(transaction=True)`: only committed rows are visible to the worker.
    Yields the worker's node name. Its log is in <test_tmpdir>/celery-worker.log.
    """
    from django.conf import settings

    from webapp.celery import app
    from webapp.runs.parts import host_queue

    nodename = f"test-agent-{os.getpid()}@localhost"
    log_path = test_tmpdir / "celery-worker.log"
    proc = spawn(
        [
            sys.executable, "-m", "celery", "-A", "webapp", "worker",
            "-Q", f"agent,{host_queue(settings.TOPOLAB_HOST)}", "-n", nodename, "--concurrency", "2",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ],
        log_path=log_path,
        env=topolab_subprocess_env,
        new_session=True,  # its pool children share its process group, stopped with it
    )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[nodename], timeout=0.5):
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited with {proc.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker did not answer within 60 s:\n{log_path.read_text()}")
        yield nodename
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Warm shutdown by TERM; if it hangs, KILL the group this fixture started (and only it)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stray pool children, if any outlived the parent
    except ProcessLookupError:
        pass
