"""Progress with an ETA for every step that runs past ~10 s (an epoch, a search iteration's candidates,
profiling units): tqdm's bar on a terminal; elsewhere (`dvc repro`, `make run | tee`, Prefect's
log, where tqdm would stay silent) the same figures as a log line every `EVERY` seconds, once the
step has run `EVERY` seconds: a short step prints nothing."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from tqdm import tqdm

log = logging.getLogger("netadapt")

EVERY = 10.0  # seconds: no line before a step has run this long, then at most one per this interval
LINE = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}{postfix}"


class _LogLines:
    """A file for tqdm that turns each refresh into one `netadapt` log line (the carriage returns and
    the blank line a closing bar writes are dropped)."""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            log.info(line)

    def flush(self) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str,
                 initial: int = 0, enabled: bool = True) -> tqdm:
    """A tqdm over `iterable` (or updated by hand, `total` steps, `initial` already done), `unit` the
    plural name of a step ("batches"): a bar on a terminal (stderr), else a log line such as
    `supernet epoch 1/3: 40/62 batches (65%), 01:58 elapsed, ETA 01:02, loss=0.512` (its
    `set_postfix`) every `EVERY` s from `EVERY` s on. `enabled` False: silent (another rank's loop)."""
    if not enabled:
        return tqdm(iterable, total=total, initial=initial, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=False)
    return tqdm(iterable, total=total, initial=initial, desc=desc, unit=unit, leave=False, file=_LogLines(),
                mininterval=EVERY, delay=EVERY, smoothing=0, bar_format=LINE)  # ETA: the mean rate so far
