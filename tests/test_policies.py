"""Policy files: the shipped ones load, and a bad one is reported with its line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from policies import SHIPPED_DIR, check_policy_file, check_policy_text, load_policies

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


def test_extends_merges_the_parent_and_resolves_paths_beside_the_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        'name: base\nversion: "1"\ndefault_action: mask\nactions: {EMAIL_ADDRESS: allow}\n'
        "detectors:\n  patterns:\n    - {name: a, label: SECRET, regex: 'sk-[a-z]+'}\n"
    )
    child = (
        'extends: base\nname: child\nversion: "2"\nactions: {PERSON: block}\n'
        "detectors:\n  prototypes: {artifact: art/medical}\n"
        "  patterns:\n    - {name: b, label: MRN, regex: 'MRN-\\d+'}\n"
        "ppvd: {store: /abs/store}\n"
    )
    policy, issues = check_policy_text(child, tmp_path)
    assert policy is not None, issues
    assert policy.name == "child" and policy.version == "2" and policy.default_action == "mask"
    assert policy.actions == {"EMAIL_ADDRESS": "allow", "PERSON": "block"}
    assert [p.name for p in policy.detectors.patterns] == ["a", "b"]
    assert policy.detectors.prototypes is not None
    assert policy.detectors.prototypes.artifact == str(tmp_path / "art" / "medical")
    assert policy.ppvd is not None and policy.ppvd.store == "/abs/store"


def test_extending_a_missing_policy_is_reported_on_its_line() -> None:
    policy, issues = check_policy_text("name: x\nversion: '1'\nextends: nowhere\n")
    assert policy is None and issues[0].line == 3 and "no policy 'nowhere'" in issues[0].message


def test_extends_loops_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b\nname: a\nversion: '1'\n")
    (tmp_path / "b.yaml").write_text("extends: a\nname: b\nversion: '1'\n")
    policy, issues = check_policy_text((tmp_path / "a.yaml").read_text(), tmp_path)
    assert policy is None and "loops" in issues[0].message


def test_example_policies_are_valid() -> None:
    examples = sorted((SHIPPED_DIR.parent / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        policy, issues = check_policy_file(path)
        assert policy is not None, (path, issues)
        assert policy.backend != "cloud" or policy.damper is not None, path  # each shows a feature off by default
        if policy.damper is not None:  # its artifact path resolves beside the example, to the shipped adapter
            assert Path(policy.damper.artifact) == SHIPPED_DIR.parent / "artifacts" / "damper" / "medical"


def test_a_policy_elsewhere_can_extend_a_shipped_domain_and_keep_its_artifact(tmp_path: Path) -> None:
    """A mounted policy directory (the Helm chart's ConfigMap) extends `medical`: its artifact path stays
    relative to the shipped policy, not to the mounted one."""
    mounted = tmp_path / "policies"
    mounted.mkdir()
    (mounted / "clinic.yaml").write_text("extends: medical\nname: clinic\nversion: '1'\n")
    policy, issues = check_policy_file(mounted / "clinic.yaml")
    assert policy is not None and policy.detectors.prototypes is not None, issues
    assert Path(policy.detectors.prototypes.artifact) == (SHIPPED_DIR.parent / "artifacts" / "medical").resolve()
