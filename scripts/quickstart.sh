#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs `currant demo`: a queue,
# a producer and consumer processes, and what they did. The exit code is
# the demo's. BUILD_DIR as in build.sh (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

bash scripts/install-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh
exec "$build_dir/tools/currant" demo
