"""The agent's side of lab hosts: its own queue, and its heartbeat.

- `celeryd_after_setup`: the worker consumes `agent.<TOPOLAB_HOST>` besides the queues it was started with
  (scripts/run.sh names both; a worker started by hand with only `-Q agent` still gets its host's queue).
- `worker_ready`: a thread in the worker's main process announces the host (services.heartbeat) at once and every
  TOPOLAB_HEARTBEAT_INTERVAL seconds, then checks the other hosts (services.check_hosts). A thread, not a task: a
  heartbeat must not wait behind a deploy in the pool, and a blocked database write (SQLite's lock) holds up only
  this thread. It closes its database connection after every beat, so a pool process forked later (a child
  replaced) never inherits an open one. `worker_shutting_down` stops it; a worker killed outright simply stops
  beating, and the other hosts' checks mark it down.
"""
from __future__ import annotations

import logging
import threading

from celery.signals import celeryd_after_setup, worker_ready, worker_shutting_down

from . import conf

log = logging.getLogger("topolab.hosts")

_stop = threading.Event()


@celeryd_after_setup.connect
def _consume_host_queue(sender=None, instance=None, **kwargs) -> None:
    queue = conf.host_queue()
    queues = instance.app.amqp.queues
    if queue not in queues.consume_from:
        queues.select_add(queue)
    log.info("host %s: consuming %s", conf.this_host(), queue)


def beat_once() -> None:
    from django.db import connection

    from . import services

    try:
        services.heartbeat()
        services.check_hosts()
    except Exception:
        log.exception("host %s: heartbeat failed; trying again in %g s", conf.this_host(), conf.heartbeat_interval())
    finally:
        connection.close()


def _beat_loop(stop: threading.Event) -> None:
    while True:
        beat_once()
        if stop.wait(conf.heartbeat_interval()):
            return


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> threading.Thread:
    _stop.clear()
    thread = threading.Thread(target=_beat_loop, args=(_stop,), name="topolab-heartbeat", daemon=True)
    thread.start()
    log.info("host %s (%s): heartbeat every %g s", conf.this_host(), conf.underlay_address(),
             conf.heartbeat_interval())
    return thread


@worker_shutting_down.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    _stop.set()
