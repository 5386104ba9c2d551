"""Load and validate policy files, reporting each error with its line in the YAML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.schema import Policy

SHIPPED_DIR = Path(__file__).parent / "domains"


class PolicyError(Exception):
    """A policy file that cannot be used; `errors` holds one line per problem."""

    def __init__(self, path: Path | str, errors: list[str]) -> None:
        self.path = str(path)
        self.errors = errors
        super().__init__(f"{path}: " + "; ".join(errors))


@dataclass(frozen=True)
class PolicyIssue:
    line: int | None
    location: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}: {self.location}: {self.message}" if self.location else f"{where}: {self.message}"


def _node_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Walk the composed YAML tree along a pydantic error location to find its line (1-based)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


APPENDED_LISTS = {("detectors", "patterns"), ("detectors", "deny_lists")}


def _merged(parent: dict[str, Any], child: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """The child's mapping over its parent's: mappings merge, patterns and deny lists add up, the rest is replaced."""
    out = dict(parent)
    for key, value in child.items():
        here = (*path, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value, here)
        elif here in APPENDED_LISTS and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def _with_parents(data: dict[str, Any], base_dir: Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Resolve `extends: NAME`, recursively: NAME.yaml beside this policy, else the shipped one of that name."""
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return data
    if not isinstance(parent_name, str) or not parent_name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"`extends` must name a policy, not {parent_name!r}")
    if parent_name in seen:
        raise ValueError(f"`extends` loops: {' -> '.join((*seen, parent_name))}")
    path = base_dir / f"{parent_name}.yaml"
    if not path.is_file():
        path = SHIPPED_DIR / f"{parent_name}.yaml"
    if not path.is_file():
        raise ValueError(f"`extends`: no policy {parent_name!r} in {base_dir} or the shipped domains")
    parent = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(parent, dict):
        raise ValueError(f"`extends`: {path.name} is not a mapping")
    parent = _with_parents(parent, path.parent, (*seen, parent_name))
    _resolve_paths(parent, path.parent)  # the parent's own paths are relative to the parent's file
    return _merged(parent, data)


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    """Artifact and store paths in a policy are relative to the policy file's directory."""
    detectors = data.get("detectors")
    prototypes = detectors.get("prototypes") if isinstance(detectors, dict) else None
    mpc = data.get("mpc")
    paths = ((prototypes, "artifact"), (prototypes, "multilingual_artifact"), (data.get("ppvd"), "store"),
             (data.get("damper"), "artifact"), (mpc, "checkpoint"), (mpc, "classifier"))  # fmt: skip
    for section, key in paths:
        if isinstance(section, dict) and isinstance(section.get(key), str) and not Path(section[key]).is_absolute():
            section[key] = str((base_dir / section[key]).resolve())


def check_policy_text(text: str, base_dir: Path | None = None) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate a policy's YAML text; returns the policy or the issues found.

    `base_dir` is where the file lives: `extends` and relative artifact paths are resolved there
    (the shipped domains' directory for a text with no file).
    """
    base_dir = base_dir or SHIPPED_DIR
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, [PolicyIssue(line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(data, dict):
        return None, [PolicyIssue(1, "", "a policy must be a mapping")]
    try:
        data = _with_parents(data, base_dir)
    except (ValueError, yaml.YAMLError) as exc:
        return None, [PolicyIssue(_node_line(root, ("extends",)), "extends", str(exc))]
    _resolve_paths(data, base_dir)
    try:
        return Policy.model_validate(data), []
    except ValidationError as exc:
        issues = [
            PolicyIssue(
                _node_line(root, tuple(err["loc"])),
                ".".join(str(p) for p in err["loc"]),
                err["msg"],
            )
            for err in exc.errors()
        ]
        return None, issues


def check_policy_file(path: Path | str) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate a policy file; its `name` must be its file name (the domain it serves)."""
    path = Path(path)
    policy, issues = check_policy_text(path.read_text(encoding="utf-8"), path.parent)
    if policy is not None and policy.name != path.stem:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        message = f"policy name {policy.name!r} must match the file name {path.stem!r}"
        return None, [PolicyIssue(_node_line(root, ("name",)), "name", message)]
    return policy, issues


def load_policy(path: Path | str) -> Policy:
    policy, issues = check_policy_file(path)
    if policy is None:
        raise PolicyError(path, [str(i) for i in issues])
    return policy


def load_policies(directory: Path | str | None = None) -> dict[str, Policy]:
    """Every `*.yaml` policy in a directory (the shipped ones by default), keyed by domain name."""
    directory = Path(directory) if directory else SHIPPED_DIR
    if not directory.is_dir():
        raise PolicyError(directory, ["policy directory does not exist"])
    policies = {p.stem: load_policy(p) for p in sorted(directory.glob("*.yaml"))}
    if not policies:
        raise PolicyError(directory, ["no *.yaml policy found"])
    return policies
