"""A Celery agent that SIGKILLs itself, worker and pool (its process group), right after a chosen `run.step`
event of a chosen run kind is stored and streamed: the crash of issue 17 part 1 at an exact step, not "about then".

Started as `python tests/chaos/kill_agent.py -A webapp worker ...` (pipeline.OwnAgent with argv0). Armed by the
file named in TOPOLAB_CHAOS_KILL_FILE holding "<kind> <step>" (e.g. "deploy 7"); the file is removed as it fires,
so the restarted agent runs on. Nothing of the product changes: the hook replaces webapp.runs.agent._sink, the
on_event every run's engine calls, with its EventBatcher that flushes and kills at the armed step, in each pool
process (worker_process_init).
"""
from __future__ import annotations

import os
import signal
import sys

from celery.signals import worker_process_init


def _install(**_: object) -> None:
    from webapp.runs import agent

    path = os.environ["TOPOLAB_CHAOS_KILL_FILE"]

    class Killing(agent.EventBatcher):
        def __init__(self, run, host=None) -> None:
            super().__init__(run, host)
            self.kind = run.kind

        def __call__(self, event) -> None:
            super().__call__(event)
            if event.type != "run.step":
                return
            try:
                with open(path) as f:
                    kind, step = f.read().split()
            except (FileNotFoundError, ValueError):
                return
            if kind == self.kind and int(step) == event.step:
                self.flush()  # the step's event stored and streamed, as a browser saw it
                os.unlink(path)
                os.killpg(os.getpgrp(), signal.SIGKILL)

    agent._sink = Killing


worker_process_init.connect(_install, weak=False)

if __name__ == "__main__":
    from celery.__main__ import main

    sys.argv[0] = "celery"
    sys.exit(main())
