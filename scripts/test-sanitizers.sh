#!/usr/bin/env bash
# Runs the test suites again under the sanitizers, each in its own build
# directory (docs/RELIABILITY.md, "Sanitizers"):
#
#   bash scripts/test-sanitizers.sh          # both
#   bash scripts/test-sanitizers.sh asan     # AddressSanitizer + UBSan only
#   bash scripts/test-sanitizers.sh tsan     # ThreadSanitizer only
#
# asan  build-asan: -Db_sanitize=address,undefined; suites unit, multiprocess,
#       crash, cli, c_api, daemon, permissions. UBSan halts on the first
#       report; LSan is on. Then, in a second run (log
#       build-asan/meson-logs/testlog-python-env.json), the suites python and
#       chaos: Debian's unsanitized interpreter with the ASan runtime and
#       libstdc++ preloaded (LD_PRELOAD, through meson's --wrapper, so meson
#       itself and the PostgreSQL the chaos run starts are not), the
#       sanitized extension, currantd and currant; leak checks off there
#       (the interpreter does not free everything at exit).
# tsan  build-tsan (clang): -Db_sanitize=thread; suites unit, multiprocess,
#       crash, cli, c_api, daemon (currantd's threads: mirror, relay,
#       signals, HTTP). Suppressions: tests/sanitizers/tsan.supp.
#
# The daemon suites run the sanitized currantd and currant as real
# processes. Not here: python-install (pip builds its own unsanitized copy),
# and python and chaos under TSan (the interpreter would have to be built
# with TSan). `meson test` builds only what the selected suites need (no
# benchmarks). The exit code is non-zero if any run failed.
# Expects scripts/install-deps.sh to have run (scripts/test.sh does).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
which=${1:-all}

common_setup=(--buildtype=debugoptimized -Doptimization=1 -Db_lundef=false -Dbenchmarks=disabled)
native_suites=(--suite unit --suite multiprocess --suite crash --suite cli --suite c_api --suite daemon)
tsan_suites=("${native_suites[@]}")
asan_suites=("${native_suites[@]}" --suite permissions)
asan_python_suites=(--suite python --suite chaos)

# configure DIR [meson setup options...]: a fresh directory is set up; an
# existing one is reconfigured only if its setup never finished or another
# meson version made it (as scripts/build.sh does).
configure() {
  local dir=$1
  shift
  if [[ ! -f $dir/meson-private/coredata.dat ]]; then
    meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
  elif [[ ! -f $dir/build.ninja ]] ||
       ! grep -q "\"full\": *\"$(meson --version)\"" "$dir/meson-info/meson-info.json" 2>/dev/null; then
    meson setup --reconfigure "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log" >&2; return 1; }
  fi
  rm -f "$dir.setup.log"
}

status=0

if [[ $which == all || $which == asan ]]; then
  configure build-asan "${common_setup[@]}" -Db_sanitize=address,undefined
  # LSan is on for the test processes; forked children leave by _exit(),
  # which skips the leak check, so only whole processes are checked.
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1:print_summary=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1 \
    meson test -C build-asan "${asan_suites[@]}" --print-errorlogs --num-processes 2 \
      --timeout-multiplier 5 || status=1
  # The interpreter is not instrumented: the runtime must come first
  # (LD_PRELOAD), and libstdc++ with it, or ASan's __cxa_throw interceptor
  # finds no real __cxa_throw (libstdc++ is loaded only with the extension)
  # and the first C++ exception aborts.
  preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
  # meson appends "-" and the wrapper's program name to --logbase, so this
  # run's log is testlog-python-env.json (scripts/test.sh counts it).
  meson test -C build-asan "${asan_python_suites[@]}" --logbase testlog-python --print-errorlogs \
      --num-processes 2 --timeout-multiplier 5 \
      --wrapper "env LD_PRELOAD='$preload' ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:print_summary=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:print_summary=1" ||
    status=1
fi

if [[ $which == all || $which == tsan ]]; then
  # clang, not GCC 12: GCC 12's TSan runtime dies with "dup thread with used
  # id" when a child forked from a multi-threaded parent starts a thread
  # whose pthread_t the parent used (every multiprocess test does that).
  if [[ ! -f build-tsan/meson-private/coredata.dat ]]; then
    CC=clang CXX=clang++ configure build-tsan "${common_setup[@]}" -Db_sanitize=thread
  else
    configure build-tsan "${common_setup[@]}" -Db_sanitize=thread
  fi
  # halt_on_error: forked children leave by _exit(), which would skip TSan's
  # exit-code change, so a report must end the process (exit 66) at once.
  # die_after_fork=0: the tests fork from processes that run the
  # participant's holder thread, and the children start their own.
  # log_path: every report also lands in a file, so one from a process no
  # test waits for (a currantd a test SIGKILLs afterwards) still fails the run.
  reports=$root/build-tsan/tsan-reports
  rm -rf "$reports" && mkdir -p "$reports"
  TSAN_OPTIONS="halt_on_error=1:die_after_fork=0:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp:log_path=$reports/report" \
    meson test -C build-tsan "${tsan_suites[@]}" --print-errorlogs --num-processes 2 \
      --timeout-multiplier 5 || status=1
  if compgen -G "$reports/report*" >/dev/null; then
    echo "test-sanitizers: ThreadSanitizer reports (files in $reports):" >&2
    cat "$reports"/report* >&2
    status=1
  fi
fi

exit "$status"
