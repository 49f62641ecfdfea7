"""Agent tasks. Each receives ids only, re-reads the run or lab, and leaves the work to `agent.py`.

acks_late and reject_on_worker_lost come from settings; a redelivered task finds its run no longer queued
and does nothing, so running one twice is harmless.
"""
from __future__ import annotations

from celery import shared_task

# A 500-node lab takes well under a minute; the limits only stop a hung kernel call from holding the lab.
RUN_SOFT_LIMIT = 600
RUN_HARD_LIMIT = 660


@shared_task(name="webapp.runs.tasks.deploy_lab", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def deploy_lab(run_id: int) -> str:
    from . import agent

    return agent.execute(run_id)


@shared_task(name="webapp.runs.tasks.destroy_lab", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def destroy_lab(run_id: int) -> str:
    from . import agent

    return agent.execute(run_id)


@shared_task(name="webapp.runs.tasks.lab_action", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def lab_action(run_id: int) -> str:
    from . import agent

    return agent.execute(run_id)


@shared_task(name="webapp.runs.tasks.run_part", soft_time_limit=RUN_SOFT_LIMIT, time_limit=RUN_HARD_LIMIT)
def run_part(run_id: int, host: str) -> str:
    """One host's part of a deploy or destroy across hosts (webapp.runs.parts)."""
    from . import agent

    return agent.execute_part(run_id, host)


@shared_task(name="webapp.runs.tasks.lab_status", soft_time_limit=8, time_limit=10)
def lab_status(lab_pk: int) -> dict:
    from . import agent

    return agent.lab_status(lab_pk)


@shared_task(name="webapp.runs.tasks.router_view", soft_time_limit=23, time_limit=25)
def router_view(lab_pk: int, node: str) -> dict:
    from . import agent

    return agent.router_view(lab_pk, node)


@shared_task(name="webapp.runs.tasks.check_deployed_labs", soft_time_limit=50, time_limit=60)
def check_deployed_labs() -> int:
    from . import agent

    return agent.check_deployed_labs()


@shared_task(name="webapp.runs.tasks.check_host_labs", soft_time_limit=50, time_limit=60)
def check_host_labs() -> int:
    """The health check of this host's own share of the labs, asked by the host that took the periodic one."""
    from . import agent

    return agent.check_deployed_labs(placed_only=True)


@shared_task(name="webapp.runs.tasks.prune", soft_time_limit=100, time_limit=120)
def prune() -> dict:
    from . import agent

    return agent.prune()
