"""Reading the params: the file read strictly (UTF-8, a mapping, no key given twice, not empty,
plain values only, aliases that expand to a bounded size), `-S key=value` overrides applied, then
parsed and checked into a `Config`; every failure a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from netadapt.config.parsing import build, short
from netadapt.config.presets import resolve_preset
from netadapt.config.rules import check_consistency, check_devices
from netadapt.config.schema import Config
from netadapt.errors import ConfigError, describe

# The values a document may hold once its aliases are expanded (each mapping, list and scalar counts
# one; the whole params.yaml is ~150): an "alias bomb" of a few KB expands to billions, and expanding
# it (a deep copy, a message quoting it) ran minutes into a MemoryError.
MAX_VALUES = 10_000


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (as loaded from params.yaml) into a `Config`: `search.preset`'s
    values for the keys it leaves unset, types and bounds, then the cross-field rules, then the
    devices (built over the checked sections)."""
    cfg = build(Config, resolve_preset(raw if raw is not None else {}), "")
    check_consistency(cfg)
    if cfg.devices or not isinstance(cfg.devices, dict):
        cfg = dataclasses.replace(cfg, devices=check_devices(cfg.devices, cfg))
    return cfg


class RefusedYAML(yaml.YAMLError):
    """Valid YAML that is not a params document: its message names the line and, where known, the key."""


class DuplicateKeyError(RefusedYAML):
    """A mapping of a YAML document gives one key twice."""


# YAML types that are not plain data (strings, numbers, booleans, null, lists, mappings): what the
# params say must survive a JSON round trip, a digest and DVC's own reading of the file.
NOT_PLAIN = {"tag:yaml.org,2002:binary": "a !!binary value", "tag:yaml.org,2002:set": "a !!set",
             "tag:yaml.org,2002:omap": "an !!omap", "tag:yaml.org,2002:pairs": "a !!pairs list"}


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (plain PyYAML silently keeps
    the last one, so the first value a reader sees is not the one used), naming the full dotted key
    and both lines."""

    root = ""  # the dotted key the document sits under (an `-S key=value` value)

    def construct_document(self, node: yaml.Node) -> Any:
        self._prefixes: dict[int, str] = {}
        self._expanded_size(node, {}, set())  # before anything expands an alias
        self._label(node, f"{self.root}." if self.root else "")
        return super().construct_document(node)

    def _expanded_size(self, node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
        """How many values `node` holds with every alias expanded (each node counted once: linear in
        the document's size), refused over `MAX_VALUES`; a node that holds itself is refused too."""
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise RefusedYAML(f"line {node.start_mark.line + 1}: an alias refers to a node that holds it "
                              f"(a recursive structure is not a params value)")
        open_nodes.add(id(node))
        children: list = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        size = 1 + sum(self._expanded_size(child, sizes, open_nodes) for child in children)
        open_nodes.discard(id(node))
        if size > MAX_VALUES:
            raise RefusedYAML(f"line {node.start_mark.line + 1}: its aliases expand to over {MAX_VALUES} values "
                              f"(an alias bomb?); refused before expanding them")
        sizes[id(node)] = size
        return size

    def _refuse(self, node: yaml.Node, what: str, advice: str = "") -> None:
        key = self._prefixes.get(id(node), "").rstrip(".")
        where = f"line {node.start_mark.line + 1}: " + (f"{key}: " if key else "")
        raise RefusedYAML(f"{where}{what} is not a params value (strings, numbers, booleans, lists and "
                          f"mappings are){advice}")

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        self._refuse(node, f"{node.value} is read as a YAML date, which",
                     f"; quote it ('{node.value}') for a string")

    def construct_not_plain(self, node: yaml.Node) -> Any:
        self._refuse(node, NOT_PLAIN[node.tag])

    def _label(self, node: yaml.Node, prefix: str) -> None:
        if id(node) in self._prefixes:  # an alias of a node already seen
            return
        self._prefixes[id(node)] = prefix
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self._label(value_node, f"{prefix}{name}.")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._label(item, f"{prefix}{i}.")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):  # the keys written here (before `<<` merges them in)
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: SafeLoader's own error follows
                    break
                line = key_node.start_mark.line + 1
                if first is not None:
                    name = self._prefixes.get(id(node), "") + str(key)
                    raise DuplicateKeyError(f"line {line}: {name} is given twice (first on line {first}); "
                                            f"YAML would silently keep the last value")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)
for _tag in NOT_PLAIN:
    StrictLoader.add_constructor(_tag, StrictLoader.construct_not_plain)


def _yaml_load(text: str, root: str = "") -> Any:
    loader = StrictLoader(text)
    loader.root = root
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `-S key=value` overrides (values parsed as YAML, as `dvc exp run -S` does)."""
    raw = json.loads(json.dumps(raw or {}))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"-S {item}: expected key=value, e.g. -S search.budget=0.4")
        try:
            value = _yaml_load(text, key) if text.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{key}: cannot parse override value {short(text, 100)}: {problem}") from None
        node, parts = raw, key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: is not a section, cannot set {key}")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Read, override and validate a params file; every failure is a `ConfigError`."""
    path = Path(path)
    data = _read_params(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        raw = _yaml_load(text)
    except RefusedYAML as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:  # no document: empty, or only comments (an absent *section* means its defaults)
        raise ConfigError(f"{path}: empty (no sections); an empty params file is most likely a mistake: "
                          f"write `{{}}` to run on every default")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or []))


_STREAMS: dict[tuple, bytes] = {}  # what a pipe held (`--params <(...)`), by path and inode: read only once


def _read_params(path: Path) -> bytes:
    """The params file's bytes: any readable path. A pipe or other stream (`--params <(...)`) is read
    once and its bytes kept for this process, so `netadapt run` and the flow, which read the params
    again for each stage, find the same params each time."""
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            stat = path.stat()
            key = (str(path), stat.st_dev, stat.st_ino)
            if key not in _STREAMS:
                _STREAMS[key] = path.read_bytes()
            return _STREAMS[key]
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a params file") from None
    except OSError as exc:  # permission, a name too long, ...
        raise ConfigError(f"{path}: cannot read the params file ({exc.strerror or describe(exc, 120)})") from None
