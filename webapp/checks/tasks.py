"""Agent tasks of check and reset runs: ids only, the work in webapp.runs.agent (which dispatches by run kind)."""
from __future__ import annotations

from celery import shared_task

from webapp.runs.tasks import RUN_HARD_LIMIT, RUN_SOFT_LIMIT


@shared_task(name="webapp.checks.tasks.check_lab", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def check_lab(run_id: int) -> str:
    from webapp.runs import agent

    return agent.execute(run_id)


@shared_task(name="webapp.checks.tasks.reset_lab", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def reset_lab(run_id: int) -> str:
    from webapp.runs import agent

    return agent.execute(run_id)
