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


def check_policy_text(text: str) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate a policy's YAML text; returns the policy or the issues found."""
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
    policy, issues = check_policy_text(path.read_text(encoding="utf-8"))
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
