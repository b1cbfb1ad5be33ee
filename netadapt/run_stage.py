"""Running one pipeline stage: the protocol the stage CLI (what `dvc repro` runs), the Prefect stage
task and the search subflow share.

    fresh_key:  remove what interrupted writes left in the stage's folders (`io.clean_stale`), then
                take its stamp key (`stamps.stage_key`: what it reads, before it runs)
    run_stage:  open the stage's tracking run; holding the project's lock, run the stage function and
                write the stage's stamp for that key (what it wrote, and `by` whom); then fill in and
                close the run with its metrics

The tracking run is injected (`track`: the front ends pass `netadapt_tracking.stage_run`), so
the library imports no MLflow. Who holds the project's lock: the stage CLI passes it (`lock`) and
`run_stage` holds it for the stage's work and publication only, so that it is never held while a
tracking server is waited for (opening the run before, logging the finished stage from its
published outputs after; issue 27, item 8); `netadapt run` and the flow hold it for their whole
run (`fresh_key` expects it held). What stays with each front end: whether an up-to-date stamp
skips the stage (the CLI always runs it, as `dvc repro` asked; the flow asks `stamps.read_stamp`
first and runs the stage in a task).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Protocol

from netadapt import stages, stamps
from netadapt.config import Config
from netadapt.io import clean_stale
from netadapt.layout import Paths


class TrackedRun(Protocol):
    """What `track` yields: a run that records the stage's metrics when it succeeded."""

    def finish(self, metrics: dict) -> None: ...


Track = Callable[[str, Config, Paths], AbstractContextManager[TrackedRun]]
StageFunction = Callable[[Config, Paths], dict]


def fresh_key(stage: str, cfg: Config, p: Paths) -> str:
    """The stage's stamp key, after removing what interrupted writes left in `p`'s artifacts, metrics
    and plots folders (call it holding the project's lock, before the stage runs)."""
    clean_stale(p)
    return stamps.stage_key(stage, cfg, p)


def run_stage(stage: str, cfg: Config, p: Paths, key: str | None = None, *, track: Track, by: str,
              stage_fn: StageFunction | None = None,
              lock: Callable[[], AbstractContextManager] | None = None) -> dict:
    """Run `stage` inside its tracking run (`track(stage, cfg, p)`: it spans the stage, so a failed or
    killed stage ends its run so) and write its stamp for `key`, the key taken before it ran; `by`
    names the front end in the stamp. `stage_fn`: the stage function (default `netadapt.stages.<stage>`;
    the search subflow passes `stages.search` with its hooks). `lock`: the project's lock, to hold
    from after the run is opened until the stamp is written (the key is then taken under it,
    `fresh_key`); without it the caller holds the lock and passes `key`. Returns the stage's metrics."""
    run = stage_fn or getattr(stages, stage)
    with track(stage, cfg, p) as tracked:
        with lock() if lock is not None else nullcontext():
            key = fresh_key(stage, cfg, p) if key is None else key
            metrics = run(cfg, p)
            stamps.write_stamp(stage, key, p, metrics, by=by)
        tracked.finish(metrics)  # the lock released: another writer need not wait for the tracking server
    return metrics


__all__ = ["fresh_key", "run_stage", "Track", "TrackedRun", "StageFunction"]
