"""What the Policies page shows: each loaded policy, its detectors, actions, artifacts and hashes,
and a policy text checked with the same function and messages as `privgate policy check`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from policies import SHIPPED_DIR, Policy, check_policy_text

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, mtime, size) -> sha256, so a page load hashes a file once
_STEM = re.compile(r"^[a-z][a-z0-9_-]*$")


def artifact_sha256(path: str) -> str | None:
    """SHA-256 of a file, or of a directory's files (relative names and contents, in name order)."""
    root = Path(path)
    if not root.exists():
        return None
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        key = (str(file), stat.st_mtime_ns, stat.st_size)
        if key not in _HASHES:
            with file.open("rb") as handle:
                _HASHES[key] = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode() + b"\x00")
        digest.update(_HASHES[key].encode())
    return digest.hexdigest()


def describe(policy: Policy) -> dict[str, Any]:
    d = policy.detectors
    named = []
    if d.prototypes is not None:
        named.append(("prototypes", d.prototypes.artifact, d.prototypes.enabled))
    if policy.ppvd is not None:
        named.append(("ppvd", policy.ppvd.store, True))
    artifacts = [
        {"kind": kind, "id": Path(path).name, "path": path, "enabled": on, "sha256": artifact_sha256(path)}
        for kind, path, on in named
    ]
    detectors = {
        "presidio": {
            "enabled": d.presidio.enabled,
            "models": dict(d.presidio.models),
            "entities": d.presidio.entities,
            "score_threshold": d.presidio.score_threshold,
        },
        "chinese": {"enabled": d.chinese.enabled},
        "prototypes": None if d.prototypes is None else {"enabled": d.prototypes.enabled},
        # names and labels only: a deny-list's terms are themselves sensitive (client names, code names)
        "patterns": [{"name": p.name, "label": p.label, "score": p.score} for p in d.patterns],
        "deny_lists": [{"label": x.label, "terms": len(x.values)} for x in d.deny_lists],
    }
    return {
        "domain": policy.name,
        "version": policy.version,
        "description": policy.description,
        "protect": policy.protect,
        "passthrough": policy.passthrough,
        "backend": policy.backend,
        "privqa": policy.privqa,
        "default_action": policy.default_action.value,
        "actions": {label: action.value for label, action in sorted(policy.actions.items())},
        "dp": policy.dp.model_dump(),
        "detectors": detectors,
        "artifacts": artifacts,
        "sha256": hashlib.sha256(policy.model_dump_json().encode()).hexdigest(),
    }


def validate(text: str, filename: str | None, policy_dir: Path | None) -> dict[str, Any]:
    """The issues `privgate policy check FILE` prints for this text, in its format (`file:line: where: what`)."""
    shown = filename or "policy.yaml"
    policy, issues = check_policy_text(text, policy_dir or SHIPPED_DIR)
    found = [{"line": i.line, "location": i.location, "message": i.message} for i in issues]
    stem = Path(shown).stem
    if policy is not None and filename and _STEM.match(stem) and policy.name != stem:  # as check_policy_file does
        line = next((n for n, t in enumerate(text.splitlines(), 1) if t.startswith("name:")), 1)
        message = f"policy name {policy.name!r} must match the file name {stem!r}"
        found.append({"line": line, "location": "name", "message": message})
    lines = [
        f"{shown}:{i['line'] or 1}: {i['location']}: {i['message']}"
        if i["location"]
        else f"{shown}:{i['line'] or 1}: {i['message']}"
        for i in found
    ]
    if policy is None or found:
        return {"ok": False, "issues": found, "lines": lines, "policy": None}
    ok_line = f"{shown}: ok (policy {policy.name!r} version {policy.version})"
    return {"ok": True, "issues": [], "lines": [ok_line], "policy": describe(policy)}
