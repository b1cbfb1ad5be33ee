"""Stage stamps: one shared notion of "this stage is up to date" for both front ends.

After a stage succeeds, whoever ran it (the stage CLI that `dvc repro` runs, or the Prefect flow)
writes a stamp `<artifacts>/.stamps/<stage>/<key>.json`. The key is what determines the stage's
result: the code version (the user's model code's too, for the stages that build the model), the
params sections the stage reads (`layout.STAGE_PARAMS`) and the content digests of its inputs. The stamp records the content digests of the stage's outputs (every
out, metrics and plots file `dvc.yaml` declares for it) and its metrics (all of them, as in its report).

A stage is up to date when the stamp for its current key exists and its outputs still have the
recorded digests: a stage run by DVC is then found up to date by the flow and the other way round,
and outputs replaced since (another run, `dvc checkout`) are noticed. The inputs and outputs listed
here are those of `dvc.yaml` (a test checks it), plus what a stage reads that DVC does not declare.

A named device's stages (`Paths.for_device`) have stamps of their own, in
`<artifacts>/devices/<name>/.stamps/<stage>/`, keyed also by the device's name.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from netadapt.config import Config
from netadapt.io import code_version, content_digest, read_json, write_json
from netadapt.layout import MODEL_STAGES, STAGE_PARAMS, Paths, stage_inputs, stage_outputs

STAMPS = ".stamps"


def stage_code_version(stage: str, cfg: Config) -> str:
    """The code a stage's result depends on: the library's, and the user's model code for the stages
    that build the model (`layout.MODEL_STAGES`; `io.code_version`)."""
    return code_version(cfg.model.name, cfg.model.path) if stage in MODEL_STAGES else code_version()


def stage_key(stage: str, cfg: Config, p: Paths) -> str:
    """What determines a stage's result: code version, the params it reads, its inputs' contents."""
    parts = [stage, stage_code_version(stage, cfg), cfg.section_digest(*STAGE_PARAMS[stage]),
             content_digest(stage_inputs(stage, cfg, p))]
    if p.device:  # (the plain pipeline's keys stay as they were)
        parts.append(p.device)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def stamp_path(stage: str, key: str, p: Paths) -> Path:
    return p.own / STAMPS / stage / f"{key}.json"


def output_digests(stage: str, p: Paths) -> dict[str, str]:
    """Content digest of each output, by its folder's name and its own (unique within a stage: the
    report and the metrics file share a name), so a stamp holds whether the folders are spelled
    relative or absolute."""
    return {f"{path.parent.name}/{path.name}": content_digest([path]) for path in stage_outputs(stage, p)}


def write_stamp(stage: str, key: str, p: Paths, metrics: dict, by: str) -> Path:
    """Record that `stage` ran for `key` and wrote its outputs as they are now (call it right after)."""
    path = stamp_path(stage, key, p)
    record = {"stage": stage, "key": key, "outputs": output_digests(stage, p), "metrics": metrics}
    write_json(path, {**record, "by": by, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "digest": _digest(record)})
    return path


def _digest(record: dict) -> str:
    """Digest of what a stamp vouches for (stage, key, outputs, metrics): an edit of any is noticed."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def read_stamp(stage: str, key: str, p: Paths) -> dict | None:
    """The stamp of `stage` for `key` if its outputs are still as recorded, else None (run it)."""
    path = stamp_path(stage, key, p)
    if not path.is_file():
        return None
    try:
        stamp = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("key") != key or stamp.get("outputs") != output_digests(stage, p):
        return None
    if stamp.get("digest") != _digest({k: stamp.get(k) for k in ("stage", "key", "outputs", "metrics")}):
        return None  # edited (its metrics, say) or written by an older version: run the stage again
    return stamp


__all__ = ["stage_code_version", "stage_key", "stamp_path", "write_stamp", "read_stamp", "STAMPS"]
