"""Django settings for Topolab.

Everything that differs between machines comes from TOPOLAB_* environment variables;
the defaults run a single-machine install out of the repository's var/ folder.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from netops import hosts as _hosts

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


VAR_DIR = Path(os.environ.get("TOPOLAB_VAR", BASE_DIR / "var"))
IMAGE_DIR = Path(os.environ.get("TOPOLAB_IMAGE_DIR", VAR_DIR / "images"))


def _secret_key() -> str:
    """TOPOLAB_SECRET_KEY, else a key generated once and kept in var/secret_key."""
    key = os.environ.get("TOPOLAB_SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    # O_EXCL: two processes starting at once agree on the first key written.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
# Off unless asked for: a traceback with local variables must never reach whoever can reach the port.
# Development: TOPOLAB_DEBUG=1 make run. Static files are served with DEBUG off too (webapp/asgi.py).
DEBUG = _env_bool("TOPOLAB_DEBUG", False)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
ALLOWED_HOSTS += [h for h in os.environ.get("TOPOLAB_ALLOWED_HOSTS", "").split(",") if h]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.core",
    "webapp.labs",
    "webapp.runs",
    "webapp.accounts",
    "webapp.classroom",
    "webapp.consoles",
    "webapp.checks",
    "webapp.hosts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

# The database: TOPOLAB_DATABASE_URL, else the embedded SQLite file TOPOLAB_DB. SQLite lives in a directory of its
# own that the web user owns: it makes its -wal/-shm files next to the database, and var/ itself is root's
# (docs/DESIGN.md, "Who owns what under var/").
DB_PATH = Path(os.environ.get("TOPOLAB_DB", VAR_DIR / "db" / "db.sqlite3"))
DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}


def sqlite_settings(path: str | Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # Web, agent and tests share one file: wait for locks instead of failing at once. IMMEDIATE: every
            # write transaction takes the database's one write lock at BEGIN, so a read-then-write cannot be
            # overtaken (select_for_update is a no-op on SQLite; PostgreSQL locks the rows instead).
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        # A file, not :memory:, so a Celery worker or daphne subprocess started by the tests
        # sees the test data. Tests point TOPOLAB_TEST_DB elsewhere to keep runs apart.
        "TEST": {"NAME": os.environ.get("TOPOLAB_TEST_DB", str(VAR_DIR / "test_db.sqlite3"))},
    }


def database_settings(url: str | None) -> dict:
    """DATABASES["default"] from TOPOLAB_DATABASE_URL (dj-database-url): postgres://user:password@host:port/name
    (a unix socket's directory as the host, percent-encoded: postgres://topolab@%2Frun%2Fpostgresql/topolab; query
    parameters such as ?sslmode=require are libpq's) or sqlite:////absolute/path.sqlite3; unset or empty, the
    SQLite file TOPOLAB_DB. Anything else raises ImproperlyConfigured, which stops the server (the URL itself is
    never repeated: it may hold a password)."""
    if not url:
        return sqlite_settings(DB_PATH)
    from django.core.exceptions import ImproperlyConfigured

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in DATABASE_SCHEMES:
        shown = repr(scheme) if re.fullmatch(r"[a-z][a-z0-9+.-]{0,19}", scheme) else "(none)"
        raise ImproperlyConfigured(
            f"TOPOLAB_DATABASE_URL: the scheme {shown} is not supported; use postgres://user:password@host/name "
            "or sqlite:////path/to/db.sqlite3 (or leave it unset for the SQLite file TOPOLAB_DB)")
    import dj_database_url

    try:
        parsed = dj_database_url.parse(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TOPOLAB_DATABASE_URL: cannot be read ({type(exc).__name__})") from None
    if not parsed.get("NAME") or parsed["NAME"] == ":memory:":
        raise ImproperlyConfigured("TOPOLAB_DATABASE_URL names no database (the web tier and the agent must share "
                                   "one: sqlite:////path/to/db.sqlite3 or postgres://user@host/name)")
    if scheme == "sqlite":
        return sqlite_settings(parsed["NAME"])
    # PostgreSQL at READ COMMITTED (its default): what must hold with concurrent workers takes row locks
    # (select_for_update), see docs/DESIGN.md "The database".
    return parsed


DATABASES = {"default": database_settings(os.environ.get("TOPOLAB_DATABASE_URL"))}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# node_modules is served at /static/vendor/ so pages import pinned npm packages as ES modules.
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor", BASE_DIR / "node_modules")]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/labs/"  # My labs: where a signed-in user works
LOGOUT_REDIRECT_URL = "/"

# --- Redis: Celery broker, results and the Channels layer -------------------------------
REDIS_URL = os.environ.get("TOPOLAB_REDIS_URL", f"unix://{VAR_DIR / 'run' / 'redis.sock'}")


def redis_settings(url: str) -> dict:
    """Every setting derived from the Redis URL (tests re-apply it for their private Redis).

    Celery (broker and result backend) spells a unix socket redis+socket:///path;
    channels_redis takes unix:///path as it is.
    """
    broker = result = url
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        broker = result = f"redis+socket://{path}"
    return {
        "REDIS_URL": url,
        "CHANNEL_LAYERS": {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                # redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis' blocking
                # pop: an idle receive() then fails with TimeoutError and kills the consumer. Read longer.
                "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30}]},
            }
        },
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": result,
    }


_redis = redis_settings(REDIS_URL)
CHANNEL_LAYERS = _redis["CHANNEL_LAYERS"]
CELERY_BROKER_URL = _redis["CELERY_BROKER_URL"]
CELERY_RESULT_BACKEND = _redis["CELERY_RESULT_BACKEND"]

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 900
CELERY_TASK_SOFT_TIME_LIMIT = 840
CELERY_TASK_DEFAULT_QUEUE = "agent"
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One result backend for the process, not one per thread (Celery's default keeps it in a thread-local). daphne runs
# each request's sync view in a thread of its own (asgiref's per-request executor), so every apply_async made a new
# Redis backend with its own pool and pub/sub connection (the subscription to the task's result), left for the
# garbage collector: daphne's descriptors grew with its requests (docs/reliability.md; celery/celery#6819). Celery's
# Redis result consumer serialises its pub/sub use with its own lock, so sharing it is safe.
CELERY_RESULT_BACKEND_THREAD_SAFE = True


# --- This lab host (webapp/hosts; docs/DESIGN.md "Scaling out") --------------------------
def _this_host() -> tuple[str, str]:
    """(TOPOLAB_HOST, TOPOLAB_UNDERLAY_ADDRESS), checked: a bad value stops whatever loads the settings."""
    try:
        name = _hosts.check_host_name(os.environ.get("TOPOLAB_HOST") or _hosts.default_host_name(socket.gethostname()))
    except ValueError as exc:
        raise ImproperlyConfigured(f"TOPOLAB_HOST: {exc}") from None
    try:
        address = _hosts.check_underlay_address(os.environ.get("TOPOLAB_UNDERLAY_ADDRESS") or _hosts.DEFAULT_UNDERLAY)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TOPOLAB_UNDERLAY_ADDRESS: {exc}") from None
    return name, address


# The agent on this machine: its name (its Celery queue is agent.<name>), the IPv4 address other hosts reach its
# tunnels at, how often it announces itself, and after how long without a heartbeat a host counts as down.
def _heartbeat_timing() -> tuple[float, float]:
    """(TOPOLAB_HEARTBEAT_INTERVAL, TOPOLAB_HOST_DOWN_AFTER) in seconds: 0.1-3600, and a host is called down only
    after more than one missed heartbeat."""
    try:
        interval = float(os.environ.get("TOPOLAB_HEARTBEAT_INTERVAL", "5"))
        down_after = float(os.environ.get("TOPOLAB_HOST_DOWN_AFTER", "15"))
    except ValueError as exc:
        raise ImproperlyConfigured(f"TOPOLAB_HEARTBEAT_INTERVAL / TOPOLAB_HOST_DOWN_AFTER: {exc}") from None
    if not 0.1 <= interval <= 3600:
        raise ImproperlyConfigured(f"TOPOLAB_HEARTBEAT_INTERVAL must be 0.1-3600 seconds, not {interval:g}")
    if not 2 * interval <= down_after <= 86400:
        raise ImproperlyConfigured(f"TOPOLAB_HOST_DOWN_AFTER must be at least twice TOPOLAB_HEARTBEAT_INTERVAL "
                                   f"({2 * interval:g} s) and at most 86400, not {down_after:g}")
    return interval, down_after


def _underlay_mtu() -> int:
    """TOPOLAB_UNDERLAY_MTU: the MTU of the network between lab hosts (1500; a jumbo underlay says e.g. 9000). Lab
    interfaces on a segment that crosses hosts get this minus VXLAN's 50 bytes (netops.span)."""
    raw = os.environ.get("TOPOLAB_UNDERLAY_MTU", "1500")
    if not raw.isdigit() or not 1280 <= int(raw) <= 9216:
        raise ImproperlyConfigured(f"TOPOLAB_UNDERLAY_MTU must be an integer 1280-9216, not {raw!r}")
    return int(raw)


TOPOLAB_HOST, TOPOLAB_UNDERLAY_ADDRESS = _this_host()
TOPOLAB_UNDERLAY_MTU = _underlay_mtu()
TOPOLAB_HEARTBEAT_INTERVAL, TOPOLAB_HOST_DOWN_AFTER = _heartbeat_timing()

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "webapp.accounts.authentication.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Throttles key on the connection's address, never on a client-supplied X-Forwarded-For.
    "NUM_PROXIES": int(os.environ.get("TOPOLAB_NUM_PROXIES", "0")),
    "EXCEPTION_HANDLER": "webapp.core.errors.exception_handler",
}

# Rate limits (DRF throttles, webapp/core/throttling.py): "<count>/<second|minute|hour|day>". Login and token per
# client address; deploy/destroy and status per user (a status call holds a daphne thread and an agent slot).
TOPOLAB_THROTTLE_LOGIN = os.environ.get("TOPOLAB_THROTTLE_LOGIN", "10/minute")
TOPOLAB_THROTTLE_TOKEN = os.environ.get("TOPOLAB_THROTTLE_TOKEN", "10/minute")
TOPOLAB_THROTTLE_DEPLOY = os.environ.get("TOPOLAB_THROTTLE_DEPLOY", "30/minute")
TOPOLAB_THROTTLE_STATUS = os.environ.get("TOPOLAB_THROTTLE_STATUS", "30/minute")
# a router panel's routing table (its Refresh button; a vtysh in the lab's cell per call)
TOPOLAB_THROTTLE_ROUTING = os.environ.get("TOPOLAB_THROTTLE_ROUTING", "60/minute")
# API tokens (POST /api/token/) expire this many seconds after they were issued; asking again gives a new one.
TOPOLAB_TOKEN_TTL = int(os.environ.get("TOPOLAB_TOKEN_TTL", str(24 * 3600)))

# Retention (the agent's periodic prune, webapp.runs.tasks.prune): run events of each lab's runs older than its
# newest TOPOLAB_RUN_EVENTS_KEEP_RUNS; stopped captures TOPOLAB_CAPTURE_RETENTION_SECONDS after they ended.
TOPOLAB_RUN_EVENTS_KEEP_RUNS = int(os.environ.get("TOPOLAB_RUN_EVENTS_KEEP_RUNS", "20"))
TOPOLAB_PRUNE_INTERVAL = float(os.environ.get("TOPOLAB_PRUNE_INTERVAL", "3600"))

# Host bridges labs may attach to (`external` nodes with `bridge:`), comma separated; none by default.
# Staff may use them all, instructors those in TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES (default *: all), students those
# a class of theirs allows (webapp/labs/uplinks.py). NAT uplinks are open to everybody.
TOPOLAB_UPLINK_BRIDGES = os.environ.get("TOPOLAB_UPLINK_BRIDGES", "")
TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES = os.environ.get("TOPOLAB_UPLINK_INSTRUCTOR_BRIDGES", "*")

SPECTACULAR_SETTINGS = {
    "TITLE": "Topolab API",
    "DESCRIPTION": "Draw virtual network labs and run them on Linux network namespaces.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # No CDN is reachable from lab hosts: Swagger UI assets come from drf-spectacular-sidecar.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # every operation documents its refusals in the one error shape (webapp.core.schema)
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "webapp.core.schema.error_responses"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("TOPOLAB_LOG_LEVEL", "INFO")},
}
