"""daphne keeps its Redis connections across requests (issue 17: its descriptors grew in the deploy/destroy cycles).

daphne runs each request's sync view in a new thread; with Celery's default thread-local result backend every
deploy's apply_async made a new backend with its own Redis connections, left for the garbage collector. Redis counts
the connections it accepts: a few deploys and destroys through a real daphne (no agent: the test finishes each run
in the database) must open next to none once the first requests have filled the pools.
"""
from __future__ import annotations

import json
import os
import urllib.request
import uuid

import pytest
import redis
from django.contrib.auth import get_user_model
from e2e.conftest import _daphne
from pipeline import hosts_document
from rest_framework.authtoken.models import Token

from webapp.accounts.models import Profile, Role
from webapp.labs.models import Lab
from webapp.runs.models import Run

pytestmark = [pytest.mark.webapp, pytest.mark.django_db(transaction=True)]

WARM_UP, REQUESTS = 4, 30
NEW_CONNECTIONS_BOUND = 4  # before the fix: one or two a request (60 and more)


def test_deploys_and_destroys_through_daphne_reuse_its_redis_connections(
        redis_server, topolab_subprocess_env, test_tmpdir, spawn):
    user = get_user_model().objects.create_user(f"fd{uuid.uuid4().hex[:6]}", password="x-correct-horse")
    Profile.objects.create(user=user, role=Role.INSTRUCTOR)
    token = Token.objects.create(user=user).key
    lab = Lab.objects.create(owner=user, name="two", document=hosts_document(2))
    env = {**topolab_subprocess_env, "TOPOLAB_AGENT_QUEUE": f"nobody-{uuid.uuid4().hex[:8]}",
           "TOPOLAB_THROTTLE_DEPLOY": "100000/minute"}
    env.pop("TOPOLAB_DEBUG", None)
    server = redis.Redis(unix_socket_path=redis_server.removeprefix("unix://"))

    def accepted() -> int:
        return int(server.info("stats")["total_connections_received"])

    procs: list = []
    with _daphne(spawn, env, test_tmpdir / "daphne-descriptors.log", procs) as url:
        fds = []
        for i in range(WARM_UP + REQUESTS):
            if i == WARM_UP:
                before = accepted()
            kind = "deploy" if i % 2 == 0 else "destroy"
            request = urllib.request.Request(f"{url}/api/labs/{lab.pk}/{kind}", data=b"", method="POST",
                                             headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 202
                run = json.load(answer)["id"]
            Run.objects.filter(pk=run).update(status=Run.Status.SUCCEEDED)  # as the agent would
            fds.append(len(os.listdir(f"/proc/{procs[0].pid}/fd")))
        new = accepted() - before
        queued = server.llen(env["TOPOLAB_AGENT_QUEUE"])
        server.delete(env["TOPOLAB_AGENT_QUEUE"])
    print(f"\n{REQUESTS} deploys and destroys through daphne after {WARM_UP}: {new} new Redis connections; "
          f"daphne's open descriptors {fds[WARM_UP - 1]} -> {fds[-1]} (at most {max(fds)})")
    assert queued == WARM_UP + REQUESTS  # every request's task was sent
    assert new <= NEW_CONNECTIONS_BOUND, new
