#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) in build-fuzz with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, then runs each target for
# SECONDS (default 30) from its seed corpus (tests/fuzz/corpus/<target>).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     targets: fuzz_segment fuzz_c_api
#
# New inputs go to build-fuzz/corpus/<target> (kept between runs, so a long
# run continues where the last one stopped), crashes to
# build-fuzz/artifacts/<target>-*; each target's log is
# build-fuzz/fuzz-<target>.log. Exits non-zero if a target found anything.
# CURRANT_FUZZ_KEEP_GOING=1 runs each target in libFuzzer's fork mode and
# keeps fuzzing after a crash or hang (each one is still written to
# artifacts/ and fails the run). The long run (docs/RELIABILITY.md,
# "Fuzzing"): CURRANT_FUZZ_KEEP_GOING=1 bash scripts/fuzz.sh 3600
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(fuzz_segment fuzz_c_api)
build_dir=build-fuzz

if [[ ! -f $build_dir/build.ninja ]]; then
  CC=clang CXX=clang++ meson setup "$build_dir" --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false -Dfuzzing=true -Dbenchmarks=disabled >/dev/null
fi
ninja -C "$build_dir" "${targets[@]/#/tests/fuzz/}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for target in "${targets[@]}"; do
  corpus=$build_dir/corpus/$target
  mkdir -p "$corpus" "$build_dir/artifacts"
  log=$build_dir/fuzz-$target.log
  # -timeout: one input that runs longer than 10 s is a hang.
  keep_going=()
  [[ ${CURRANT_FUZZ_KEEP_GOING:-0} == 0 ]] || keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1)
  before=$(ls "$build_dir/artifacts" | grep -c "^$target-" || true)
  if "$build_dir/tests/fuzz/$target" "$corpus" "tests/fuzz/corpus/$target" "${keep_going[@]}" \
      -max_total_time="$seconds" -timeout=10 -max_len=1024 -print_final_stats=1 \
      -artifact_prefix="$build_dir/artifacts/$target-" >"$log" 2>&1 &&
      [[ $(ls "$build_dir/artifacts" | grep -c "^$target-" || true) == "$before" ]]; then
    # The last "#N" status line counts every execution (in fork mode too).
    executions=$(grep -ao '^#[0-9][0-9]*' "$log" | tail -n 1 | tr -d '#')
    echo "fuzz: $target ran ${seconds}s, ${executions:-?} executions, nothing found"
  else
    status=1
    echo "fuzz: $target FAILED; its log ($log) ends:" >&2
    tail -n 60 "$log" >&2
  fi
done
exit "$status"
