"""The database setting (TOPOLAB_DATABASE_URL, webapp.settings.database_settings) and the run's own database:
SQLite by default, the private PostgreSQL server with --postgres (tests/conftest.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from webapp import settings as topolab_settings
from webapp.consoles import services as console_services
from webapp.labs.models import Lab

pytestmark = [pytest.mark.webapp]

REPO = Path(__file__).resolve().parents[2]


def test_unset_is_the_embedded_sqlite_file():
    db = topolab_settings.database_settings(None)
    assert db["ENGINE"] == "django.db.backends.sqlite3" and db["NAME"] == topolab_settings.DB_PATH
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert topolab_settings.database_settings("") == db


def test_a_postgres_url_with_a_socket_directory_and_libpq_options():
    db = topolab_settings.database_settings("postgres://topolab:s3cret@%2Frun%2Fpostgresql/topolab?sslmode=disable")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["HOST"], db["USER"], db["PASSWORD"], db["NAME"]) == ("/run/postgresql", "topolab", "s3cret", "topolab")
    assert db["OPTIONS"] == {"sslmode": "disable"}
    db = topolab_settings.database_settings("postgresql://web@db.example.org:5433/labs")
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.example.org", 5433, "labs")


def test_a_sqlite_url_keeps_the_sqlite_options():
    db = topolab_settings.database_settings("sqlite:////srv/topolab/db.sqlite3")
    assert db["NAME"] == "/srv/topolab/db.sqlite3" and db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.parametrize("url, shown", [
    ("mysql://root:hunter2@db/topolab", "'mysql'"),
    ("hunter2", "(none)"),
    ("redis://:hunter2@localhost/0", "'redis'"),
    ("<script>://hunter2", "(none)"),
])
def test_an_unsupported_scheme_is_refused_naming_the_setting_and_never_the_password(url, shown):
    with pytest.raises(ImproperlyConfigured) as caught:
        topolab_settings.database_settings(url)
    message = str(caught.value)
    assert message.startswith(f"TOPOLAB_DATABASE_URL: the scheme {shown} is not supported; use postgres://")
    assert "hunter2" not in message


@pytest.mark.parametrize("url", ["sqlite://", "sqlite://:memory:", "postgres://db.example.org/"])
def test_a_url_without_a_database_that_web_and_agent_can_share_is_refused(url):
    with pytest.raises(ImproperlyConfigured, match="TOPOLAB_DATABASE_URL names no database"):
        topolab_settings.database_settings(url)


def test_a_bad_database_url_stops_the_server():
    """Django reads the settings first: manage.py (and so daphne, the agent, migrate) stops with the message."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings",
           "TOPOLAB_DATABASE_URL": "mysql://root:hunter2@db/topolab"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "ImproperlyConfigured: TOPOLAB_DATABASE_URL: the scheme 'mysql' is not supported" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.django_db
def test_this_run_uses_the_database_it_was_asked_for(request, topolab_subprocess_env):
    """The PostgreSQL pass of `make test` really is on PostgreSQL, and so are the subprocesses it starts."""
    if request.config.getoption("postgres"):
        assert connection.vendor == "postgresql"
        assert connection.settings_dict["NAME"] == "test_topolab"
        assert Path(connection.settings_dict["HOST"]).is_dir()  # the private server's socket directory
        sub = topolab_settings.database_settings(topolab_subprocess_env["TOPOLAB_DATABASE_URL"])
        assert (sub["HOST"], sub["NAME"]) == (connection.settings_dict["HOST"], "test_topolab")
        with connection.cursor() as cursor:
            cursor.execute("SHOW transaction_isolation")
            assert cursor.fetchone()[0] == "read committed"
    else:
        assert connection.vendor == "sqlite"
        assert "TOPOLAB_DATABASE_URL" not in topolab_subprocess_env


@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_the_users_lock_and_then_counts_what_was_committed(settings):
    """The user's row lock (webapp.consoles.services._lock_user) is a real lock: a claim made while another
    transaction holds it waits, then sees that transaction's session. Deterministic, unlike the parallel tests
    in test_multiuser.py: on SQLite the waiting is for the one writer, on PostgreSQL for the row."""
    settings.CONSOLE_MAX_OPEN = 1
    user = get_user_model().objects.create_user("locky")
    lab = Lab.objects.create(owner=user, name="l", document={"version": 1, "name": "l", "nodes": {}, "links": []})
    locked, release, claimed = threading.Event(), threading.Event(), threading.Event()
    outcome: list = []

    def holder():
        try:
            with transaction.atomic():
                console_services._lock_user(user)
                console_services.start_session(user, lab, "h1", "console")  # the place, not yet committed
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    def claimer():
        locked.wait(20)
        try:
            outcome.append(console_services.claim_console(user, lab, "h1"))
        finally:
            claimed.set()
            connection.close()

    threads = [threading.Thread(target=holder), threading.Thread(target=claimer)]
    [t.start() for t in threads]
    try:
        assert locked.wait(20)
        assert not claimed.wait(1.0), "the claim went through while another transaction held the user's lock"
    finally:
        release.set()
        [t.join(30) for t in threads]
    assert outcome == [None]  # it counted the committed session: the one place was taken
