"""The `command` latency backend's device: a user's command that times one ONNX graph.

`profile.command` is a shell command template; each invocation times one exported graph for
`{repeats}` runs (after `{warmup}` untimed ones) and prints its median in milliseconds, which
`profile.command_pattern` (a regular expression: its named group `ms`, else its first group) reads
from the output. Placeholders:

- `{model}`: path of the ONNX file to time (required; fixed batch size, inputs `input0, ...`),
- `{repeats}`, `{warmup}`, `{threads}`, `{batch_size}`: the `profile.*` settings,
- `{python}`: the Python running netadapt (`sys.executable`: the venv's, under DVC too).

Substituted values are shell-quoted for the shell that reads them (`expand`): as words of their own
at the top level, and inside a quoted string (`sh -c '... {model} ...'`, which a second shell parses)
so that the quoted string hands the inner shell a quoted word: a temp path with a space or a quote
stays one argument. The command runs in the current directory (the repository root under DVC). Examples: `{python} devices/onnxruntime_device.py --model {model} ...` (shipped),
`ssh box onnxruntime_perf_test -r {repeats} {model}`, or
`sh -c 'adb push {model} /data/local/tmp/m.onnx >/dev/null && adb shell /data/local/tmp/bench ...'`.

This module imports neither torch nor onnx, so config validation can use it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import signal
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from netadapt.errors import NetAdaptError

PLACEHOLDERS = ("model", "repeats", "warmup", "threads", "batch_size", "python")
DEFAULT_TEMPLATE = ("{python} devices/onnxruntime_device.py --model {model} --runs {repeats} "
                    "--warmup {warmup} --threads {threads}")
DEFAULT_PATTERN = r"median_ms=([0-9.eE+-]+)"


class CommandError(NetAdaptError):
    """The device command failed, timed out, or printed nothing the pattern reads."""


def template_problem(template: str) -> str | None:
    """Why `template` is not a usable command template (None when it is)."""
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        return f"not a valid template ({exc}; write a literal brace as '{{{{' or '}}}}')"
    for name, spec, conv in fields:
        if name not in PLACEHOLDERS:
            return (f"unknown placeholder {{{name}}} (known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; "
                    f"write a literal brace as '{{{{' or '}}}}')")
        if spec or conv:
            return f"placeholder {{{name}}} takes no format spec or conversion"
    if "model" not in {name for name, _, _ in fields}:
        return "must contain {model}, the path of the ONNX graph to time"
    return None


def expand(template: str, values: dict[str, str]) -> str:
    """`template` (a valid one, `template_problem`) with each placeholder replaced by its value, quoted
    for where it stands: `shlex.quote`d at the top level; inside '...' or "..." (a string that a second
    shell parses, as `sh -c` does) that quoted word escaped for the quotes around it, so that the outer
    shell's quote removal hands the inner shell the quoted word. Values of plain characters (letters,
    digits, `@%+=:,./-_`) are never quoted."""
    out, quote = [], ""  # the quotes open where the text so far ends: "" (none), "'" or '"'
    for text, name, _, _ in string.Formatter().parse(template):
        out.append(text)
        quote = _open_quote(text, quote)
        if name is None:
            continue
        word = shlex.quote(values[name])
        if quote == "'":
            word = word.replace("'", "'\\''")
        elif quote == '"':
            word = re.sub(r'([\\$`"])', r"\\\1", word)
        out.append(word)
    return "".join(out)


def _open_quote(text: str, quote: str) -> str:
    """The quotes open after the shell reads `text`, starting with `quote` open (POSIX sh rules:
    nothing escapes inside '...'; a backslash escapes the next character elsewhere)."""
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quote == "'":
            quote = "" if ch == "'" else quote
        elif ch == "\\":
            escaped = True
        elif quote == '"':
            quote = "" if ch == '"' else quote
        elif ch in "'\"":
            quote = ch
    return quote


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot read a time from the command's output (None when it can)."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    if compiled.groups < 1:
        return "needs a capture group holding the time in ms: a named group (?P<ms>...) or a first group (...)"
    return None


def template_files(template: str) -> dict[str, str]:
    """Digest of each existing file the template names as a word of its own (a device script such
    as `devices/onnxruntime_device.py`), by the name as written: what a cache keys the device by."""
    literal = "".join(text + (" " if name is not None else "")
                      for text, name, _, _ in string.Formatter().parse(template))
    try:
        words = shlex.split(literal)
    except ValueError:
        words = literal.split()
    digests = {}
    for word in words:
        path = Path(word)
        if word and path.is_file():
            digests[word] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return digests


@dataclass(frozen=True)
class CommandSettings:
    """How to time a graph on the device: the command template, the pattern that reads its output
    (ms), and how long one invocation may take before it counts as failed."""

    template: str = DEFAULT_TEMPLATE
    pattern: str = DEFAULT_PATTERN
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for key, value, problem in (("profile.command", self.template, template_problem(self.template)),
                                    ("profile.command_pattern", self.pattern, pattern_problem(self.pattern))):
            if problem:
                raise CommandError(f"{key}: {problem}, got {value!r}")

    def command_line(self, model: str, repeats: int, warmup: int, threads: int, batch_size: int) -> str:
        values = {"model": model, "repeats": repeats, "warmup": warmup, "threads": threads,
                  "batch_size": batch_size, "python": sys.executable}
        return expand(self.template, {k: str(v) for k, v in values.items()})

    def time_graph(self, model: str, repeats: int, warmup: int, threads: int, batch_size: int) -> float:
        """Run the command once on the graph file `model`; the median (ms) it reports."""
        line = self.command_line(model, repeats, warmup, threads, batch_size)
        output, code = _run(line, self.timeout_s)
        if code is None:
            raise CommandError(f"profile.command: timed out after {self.timeout_s:g} s (profile.command_timeout): "
                               f"{line}; last output line: {_last_line(output)!r}")
        if code != 0:
            raise CommandError(f"profile.command: exited with status {code}: {line}; last output line: "
                               f"{_last_line(output)!r}")
        return self.read_ms(output, line)

    def read_ms(self, output: str, line: str = "") -> float:
        """The time the pattern reads from `output` (its last match)."""
        matches = list(re.finditer(self.pattern, output))
        if not matches:
            raise CommandError(f"profile.command_pattern: {self.pattern!r} matches nothing in the output of "
                               f"{line or 'the command'}; last output line: {_last_line(output)!r}")
        match = matches[-1]
        text = match.group("ms") if "ms" in match.re.groupindex else match.group(1)
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = float("nan")
        if not value >= 0:  # negative or NaN
            raise CommandError(f"profile.command_pattern: {self.pattern!r} read {text!r}, not a time in ms, from "
                               f"the output of {line or 'the command'}; last output line: {_last_line(output)!r}")
        return value


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""


def _run(line: str, timeout_s: float) -> tuple[str, int | None]:
    """Output (stdout then stderr) and exit status of a shell command; status None on a timeout,
    after the command's whole process group was killed (a shell's children too)."""
    proc = subprocess.Popen(line, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return (out or "") + (err or ""), None
    except BaseException:  # an interrupted profile run leaves no device command behind
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return (out or "") + (err or ""), proc.returncode
