#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs the test suite.
# The exit code is meson test's. BUILD_DIR as in build.sh (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

bash scripts/install-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh
status=0
meson test -C "$build_dir" --print-errorlogs --num-processes 2 \
  --timeout-multiplier 3 || status=$?

# One closing line a CI reader understands: "N passed, N failed".
/usr/bin/python3 - "$build_dir/meson-logs/testlog.json" <<'PY' || true
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    result = json.loads(line).get("result")
    if result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit "$status"
