#!/usr/bin/env bash
# Regenerates BENCHMARKS.md's generated section and docs/bench/*.png in one
# command (issue 6): builds what the scenarios run (release, build-report/;
# CURRANT_REPORT_BUILD overrides), installs python3-matplotlib from Debian
# when it is missing (bench-only: the build and scripts/test.sh never need
# it), then runs bench/report.py with the given options:
#
#   bash bench/report.sh                  # every scenario, then BENCHMARKS.md and the plots
#   bash bench/report.sh --only light     # one scenario's table, nothing written
#   bash bench/report.sh --list           # scenarios and their exact commands
#
# The idle scenario starts its own throwaway PostgreSQL (Debian's
# postgresql, scripts/install-deps.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${CURRANT_REPORT_BUILD:-$root/build-report}

if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  if ((EUID != 0)); then
    echo "report.sh: python3-matplotlib is missing (for the plots): apt-get install python3-matplotlib (as root)" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-matplotlib >&2
fi

if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" "$root" --buildtype=release -Dbenchmarks=enabled >&2
fi
ninja -C "$build" bench/load/currant-bench bench/floors/floor_cache_line bench/floors/floor_futex_wakeup \
  bench/floors/floor_spsc_ring bench/daemon/currant_mirror_bench daemon/currantd tools/currant \
  clients/python/currant/_currant.cpython-311-x86_64-linux-gnu.so \
  clients/python/currant/__init__.py clients/python/currant/__main__.py clients/python/currant/_bench.py \
  clients/python/currant/_errors.py clients/python/currant/aio.py clients/python/currant/worker.py >&2

exec /usr/bin/python3 "$root/bench/report.py" --build "$build" "$@"
