"""Reading the params: the file read strictly (UTF-8, a mapping, no key given twice, not empty),
`-S key=value` overrides applied, then parsed and checked into a `Config`; every failure a
`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from netadapt.config.parsing import build
from netadapt.config.rules import check_consistency, check_devices
from netadapt.config.schema import Config
from netadapt.errors import ConfigError


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (as loaded from params.yaml) into a `Config`: types and bounds,
    then the cross-field rules, then the devices (built over the checked sections)."""
    cfg = build(Config, raw if raw is not None else {}, "")
    check_consistency(cfg)
    if cfg.devices or not isinstance(cfg.devices, dict):
        cfg = dataclasses.replace(cfg, devices=check_devices(cfg.devices, cfg))
    return cfg


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of a YAML document gives one key twice."""


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (plain PyYAML silently keeps
    the last one, so the first value a reader sees is not the one used), naming the full dotted key
    and both lines."""

    root = ""  # the dotted key the document sits under (an `-S key=value` value)

    def construct_document(self, node: yaml.Node) -> Any:
        self._prefixes: dict[int, str] = {}
        self._label(node, f"{self.root}." if self.root else "")
        return super().construct_document(node)

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
            raise ConfigError(f"{key}: cannot parse override value {text!r}: {problem}") from None
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
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a params file")
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        raw = _yaml_load(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:  # no document: empty, or only comments (an absent *section* means its defaults)
        raise ConfigError(f"{path}: empty (no sections); an empty params file is most likely a mistake: "
                          f"write `{{}}` to run on every default")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or []))
