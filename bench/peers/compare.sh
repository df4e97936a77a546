#!/usr/bin/env bash
# currant beside its peers (issue 6): one command that sets up what is
# missing and runs the comparison (bench/peers/compare.py; its options pass
# through, e.g. --runs 3, --systems currant,bullmq, --synchronous-commit off).
#
#   bash bench/peers/compare.sh [compare.py options]
#
# - redis-server: installed from Debian's archive when missing (as root).
# - the npm peers: `npm install` of bench/peers/package.json (exact versions)
#   into build-peers/ (ignored by git; CURRANT_PEERS_DIR overrides), only when
#   node_modules is missing or package.json changed. Nothing else in the
#   repository needs them: not the build, not scripts/test.sh.
# - currant's binaries: a release build in build-peers-cxx/ (CURRANT_PEERS_BUILD
#   overrides) of the working tree: currant-bench, currant-bench-skip-locked,
#   currantd, currant.
# PostgreSQL 15 (Debian) and Node 20 must already be installed
# (scripts/install-deps.sh has postgresql).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
peers=${CURRANT_PEERS_DIR:-$root/build-peers}
build=${CURRANT_PEERS_BUILD:-$root/build-peers-cxx}

if ! command -v redis-server >/dev/null; then
  if ((EUID != 0)); then echo "compare.sh: redis-server is missing: apt-get install redis-server (as root)" >&2; exit 1; fi
  apt-get install -y redis-server >/dev/null
fi
command -v node >/dev/null || { echo "compare.sh: node (20) is missing" >&2; exit 1; }

mkdir -p "$peers"
if [[ ! -d $peers/node_modules ]] || ! cmp -s "$root/bench/peers/package.json" "$peers/package.json"; then
  cp "$root/bench/peers/package.json" "$peers/package.json"
  (cd "$peers" && npm install --no-audit --no-fund --omit=dev >&2)
fi

if [[ ! -f $build/build.ninja ]]; then
  meson setup "$build" "$root" -Dbuildtype=release -Dbenchmarks=enabled >&2
fi
ninja -C "$build" bench/load/currant-bench bench/floors/floor_cache_line bench/floors/floor_futex_wakeup \
  bench/floors/floor_spsc_ring bench/peers/currant-bench-skip-locked daemon/currantd tools/currant >&2

exec /usr/bin/python3 "$root/bench/peers/compare.py" --build "$build" --peers "$peers" "$@"
