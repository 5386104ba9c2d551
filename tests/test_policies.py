"""Policy files: the shipped ones load, and a bad one is reported with its line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from policies import SHIPPED_DIR, check_policy_text, load_policies

BAD = """\
name: demo
version: "1"
detectors:
  presidio:
    score_threshold: 2
  patterns:
    - name: key
      label: SECRET
      regex: "(("
actions:
  PERSON: obliterate
"""


def test_shipped_policies_load() -> None:
    policies = load_policies(SHIPPED_DIR)
    assert "general" in policies and policies["general"].protect


def test_errors_carry_their_line() -> None:
    policy, issues = check_policy_text(BAD)
    assert policy is None
    found = {(i.line, i.location) for i in issues}
    assert (5, "detectors.presidio.score_threshold") in found
    assert (9, "detectors.patterns.0.regex") in found
    assert (11, "actions.PERSON") in found


def test_policy_check_command(tmp_path: Path) -> None:
    bad = tmp_path / "demo.yaml"
    bad.write_text(BAD)
    good = tmp_path / "other.yaml"
    good.write_text('name: wrong\nversion: "1"\n')
    result = CliRunner().invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 1 and f"{bad}:11: actions.PERSON" in result.output
    result = CliRunner().invoke(app, ["policy", "check", str(good)])
    assert result.exit_code == 1 and "must match the file name" in result.output
    result = CliRunner().invoke(app, ["policy", "check", str(SHIPPED_DIR / "general.yaml")])
    assert result.exit_code == 0, result.output
