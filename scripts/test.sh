#!/usr/bin/env bash
# Installs missing dependencies, builds, and runs the test suite: every suite
# in BUILD_DIR (as in build.sh, default: build), then the sanitized runs in
# build-asan and build-tsan (scripts/test-sanitizers.sh; CURRANT_SANITIZERS=0
# skips them), then each fuzz target for 30 s (scripts/fuzz.sh; CURRANT_FUZZ=0
# skips it). The exit code is non-zero if any run failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

bash scripts/install-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh
status=0
# Its own log name: a `meson test` someone else runs in the same build
# directory meanwhile would overwrite testlog.json under the summary below.
rm -f "$build_dir/meson-logs/test-sh.json"
meson test -C "$build_dir" --print-errorlogs --num-processes 2 \
  --timeout-multiplier 3 --logbase test-sh || status=$?

logs=("$build_dir/meson-logs/test-sh.json")
if [[ ${CURRANT_SANITIZERS:-1} != 0 ]]; then
  rm -f build-asan/meson-logs/testlog.json build-asan/meson-logs/testlog-python-env.json \
    build-tsan/meson-logs/testlog.json
  bash scripts/test-sanitizers.sh || status=1
  logs+=(build-asan/meson-logs/testlog.json build-asan/meson-logs/testlog-python-env.json
         build-tsan/meson-logs/testlog.json)
fi

# --- fuzzing (tests/fuzz, scripts/fuzz.sh) -------------------------------
# Each libFuzzer target for CURRANT_FUZZ_SECONDS (default 30) in build-fuzz
# (clang, ASan+UBSan); CURRANT_FUZZ=0 skips it. Prints one line per target.
if [[ ${CURRANT_FUZZ:-1} != 0 ]]; then
  bash scripts/fuzz.sh "${CURRANT_FUZZ_SECONDS:-30}" || status=1
fi
# --- end of fuzzing ----------------------------------------------------------

# One closing line a CI reader understands: "N passed, N failed", over every
# build directory (a run that left no log counts as one failure).
/usr/bin/python3 - "${logs[@]}" <<'PY' || status=1
import json, sys
passed = failed = skipped = 0
parts = []
failures = []  # (label, test name, result, last lines of its output)
for path in sys.argv[1:]:
    p = f = s = 0
    missing = False
    try:
        lines = open(path).readlines()
    except OSError:
        lines, missing, f = [], True, 1
    # build-asan/meson-logs/testlog-python-env.json -> "build-asan python-env"
    label = path.split('/')[0]
    base = path.rsplit('/', 1)[-1]
    if base.startswith("testlog-"):
        label += " " + base[len("testlog-"):-len(".json")]
    if missing:
        failures.append((label, "(no test log)", "MISSING", ""))
    for line in lines:
        row = json.loads(line)
        result = row.get("result")
        if result in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif result == "SKIP":
            s += 1
        else:
            f += 1
            output = (row.get("stdout") or "") + (row.get("stderr") or "")
            failures.append((label, row.get("name"), result,
                             "\n".join(output.splitlines()[-40:])))
    parts.append(f"{label} {p}/{f}/{s}")
    passed, failed, skipped = passed + p, failed + f, skipped + s
# CI shows only the end of the output: each failure's own tail goes last.
for label, name, result, tail in failures:
    print(f"--- {label}: {name} {result}; the last lines it printed:")
    print(tail)
for label, name, result, _ in failures:
    print(f"failed: {label}: {name} ({result})")
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped"
      f" (passed/failed/skipped: {', '.join(parts)})")
sys.exit(1 if failed else 0)
PY
exit "$status"
