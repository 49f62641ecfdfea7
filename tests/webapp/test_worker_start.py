"""What the agent's Celery worker does when it starts, before any run (issue 18, deploy latency).

The first run of each fresh pool process used to import the run code (webapp.runs.agent: netops.engine, pyroute2)
inside the run, between the run row and its run.started event: 2.15 s for the first deploy after a start, 18 ms
for the next. The worker's main process now imports it at `worker_init`, before it forks its pool, with the channel layer's
backend that every event is sent through.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.webapp]

LOADED = ("webapp.runs.agent", "netops.engine", "pyroute2", "channels_redis.core")


def run_python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_worker_loads_the_run_code_at_worker_init_before_its_pool_forks(topolab_subprocess_env):
    out = run_python(
        "import sys, django; django.setup()\n"
        "from celery.signals import worker_init\n"
        f"print(*[m in sys.modules for m in {LOADED!r}])\n"
        "worker_init.send(sender=None)\n"
        f"print(*[m in sys.modules for m in {LOADED!r}])\n",
        topolab_subprocess_env)
    before, after = out.splitlines()[-2:]
    assert before == "False False False False", "the web tier's start must not import the agent's run code"
    assert after == "True True True True"


def test_the_web_tier_never_imports_the_run_code(topolab_subprocess_env):
    """What daphne loads (the ASGI application and the tasks it enqueues) stays without netops.engine."""
    out = run_python(
        "import sys, django; django.setup()\n"
        "import webapp.asgi, webapp.runs.tasks, webapp.runs.signals\n"
        f"print(*[m in sys.modules for m in {LOADED[:2]!r}])\n",
        topolab_subprocess_env)
    assert out.splitlines()[-1] == "False False"
