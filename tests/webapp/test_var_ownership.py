"""Everything root reads or executes under var/ is out of the web user's reach (docs/DESIGN.md, "Who owns what
under var/"), checked as the web user itself on the var/ that scripts/setup.sh prepared (`make test` runs it)."""
from __future__ import annotations

import os
import pwd
import subprocess

import pytest
from django.conf import settings

pytestmark = [
    pytest.mark.webapp,
    pytest.mark.skipif(os.geteuid() != 0, reason="setup only sets ownership as root"),
]
WEB_USER = "topolab"


def as_web_user(*argv: str) -> int:
    return subprocess.run(["setpriv", f"--reuid={WEB_USER}", f"--regid={WEB_USER}", "--clear-groups", "--", *argv],
                          capture_output=True).returncode


@pytest.fixture(scope="module")
def var():
    try:
        pwd.getpwnam(WEB_USER)
    except KeyError:
        pytest.fail(f"no user {WEB_USER}: run scripts/setup.sh as root")
    path = settings.VAR_DIR
    assert (path / "agent").is_dir(), "var/agent is missing: run scripts/setup.sh as root"
    return path


@pytest.mark.parametrize("where", ["", "agent", "images", "stamps"])
def test_the_web_user_cannot_write_where_root_reads(var, where):
    target = var / where
    assert as_web_user("test", "-w", str(target)) != 0, f"{WEB_USER} may write {target}"
    assert target.stat().st_uid == 0


def test_the_beat_schedule_dir_is_roots_alone(var):
    assert (var / "agent").stat().st_mode & 0o077 == 0
    assert as_web_user("test", "-r", str(var / "agent")) != 0


def test_the_web_user_writes_its_own_database_and_run_directories(var):
    for where in ("db", "run", "redis"):
        assert as_web_user("test", "-w", str(var / where)) == 0, f"{WEB_USER} cannot write var/{where}"
    assert as_web_user("test", "-r", str(var / "secret_key")) == 0
    assert as_web_user("test", "-w", str(var / "secret_key")) != 0


def test_make_run_keeps_the_beat_schedule_in_var_agent():
    script = (settings.BASE_DIR / "scripts" / "run.sh").read_text()
    assert '-s "$VAR/agent/celerybeat-schedule"' in script and "run/celerybeat-schedule" not in script


def test_a_labs_own_uid_reads_the_image_library(var):
    """qemu runs in the lab's cell as the lab's uid (neither root nor topolab): it must reach var/images."""
    images = [p for p in (var / "images").rglob("*") if p.is_file()]
    if not images:
        pytest.skip("no image built in var/images")
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "test", "-r", str(images[0])]
    assert subprocess.run(argv).returncode == 0, f"a lab uid cannot read {images[0]}"
