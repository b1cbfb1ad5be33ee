"""Serving the pipeline's flow as a Prefect deployment (`netadapt serve`): on a schedule until
interrupted, or one run now (`--once`) whose result is read back as plain JSON."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from netadapt_flows.flow import netadapt_flow
from netadapt_flows.reporting import BUDGET_MISSED
from netadapt_tasks.results import read_result


def trigger_hint(name: str, api_url: str, deployment_id: object) -> str:
    """What `serve` prints: the command that starts a run of deployment `netadapt/<name>` from another
    shell, with the server it must ask (`PREFECT_API_URL`: without it the `prefect` CLI starts a
    temporary server of its own that knows no deployment, and times out), and the deployment's page."""
    exe = Path(sys.executable).with_name("prefect")
    prefect = shlex.quote(str(exe)) if exe.is_file() else "prefect"
    ui = api_url.removesuffix("/api")
    return (f"netadapt: serving deployment netadapt/{name} (Ctrl-C stops it). To start a run now, from another "
            f"shell:\n  PREFECT_API_URL={api_url} {prefect} deployment run {shlex.quote(f'netadapt/{name}')}\n"
            f"netadapt: its runs: {ui}/deployments/deployment/{deployment_id}")


def serve(name: str, parameters: dict, cron: str | None = None, interval: float | None = None,
          once: bool = False) -> tuple[str, dict | None] | None:
    """Serve `netadapt_flow` as the deployment `netadapt/<name>` (with `parameters`, on a cron or an
    interval schedule) until interrupted. The runner executes each run in a subprocess with this
    process's environment: the same PREFECT_HOME (so the same cache) and working directory.

    `once`: create the deployment, start one run of it now, execute it as the served runner would,
    and return its final state's name and result instead of serving on."""
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    if not once:
        runner = Runner(name=name, limit=1)  # the runs share `netadapt serve`'s project lock: one at a time
        deployment_id = runner.add_flow(netadapt_flow, name=name, cron=cron, interval=interval, parameters=parameters,
                                        entrypoint_type=EntrypointType.MODULE_PATH)
        print(trigger_hint(name, os.environ["PREFECT_API_URL"], deployment_id), file=sys.stderr, flush=True)
        try:
            asyncio.run(runner.start())
        except (KeyboardInterrupt, TerminationSignal):  # as `Flow.serve` ends
            pass
        return None
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runner = Runner(name=f"{name}-once")
    deployment_id = runner.add_flow(netadapt_flow, name=name, parameters=parameters,
                                    entrypoint_type=EntrypointType.MODULE_PATH)
    run = run_deployment(deployment_id, timeout=0)  # scheduled now; the runner picks it up
    asyncio.run(runner.start(run_once=True))
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    # BudgetMissed: a Failed state holding the whole result (`netadapt_flow`), for the summary to say what missed
    result = read_result(state) if state is not None and (state.is_completed() or state.name == BUDGET_MISSED) \
        else None
    return (state.name if state is not None else "Unknown"), result
