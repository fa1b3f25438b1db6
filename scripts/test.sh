#!/usr/bin/env bash
# Runs every test of stepwise on a fresh machine: installs what the tests need (the Azure
# CLI in a virtual environment, for checking recorded az commands against the real CLI),
# then formatting, lints and the whole test suite.
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
export AZURE_CONFIG_DIR="$(mktemp -d)"
export AZURE_CORE_COLLECT_TELEMETRY=no
export AZURE_CORE_NO_COLOR=1
trap 'rm -rf "$AZURE_CONFIG_DIR"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings

step "tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --failure-output final
else
  cargo test --no-fail-fast
fi
