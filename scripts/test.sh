#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs the test suite.
# The exit code is meson test's. BUILD_DIR as in build.sh (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

bash scripts/install-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh
exec meson test -C "$build_dir" --print-errorlogs --num-processes 2 \
  --timeout-multiplier 3
