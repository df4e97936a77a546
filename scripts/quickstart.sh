#!/usr/bin/env bash
# currant's main job on a default local setup: installs what is missing,
# builds, starts a local PostgreSQL (scripts/local-postgres.sh) with the
# schema, starts currantd, and runs producer and consumer processes on the
# queue it mirrors (`currant demo --existing --durability async`). Prints
# what the processes did and what PostgreSQL recorded, then stops the daemon.
# The exit code is the demo's. BUILD_DIR as in build.sh (default: build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}
queue=${CURRANT_QUEUE:-currant-quickstart}

bash scripts/install-deps.sh
BUILD_DIR=$build_dir bash scripts/build.sh
currant=$build_dir/tools/currant

db=$(bash scripts/local-postgres.sh start)
if ! "$currant" db status --db "$db" >/dev/null 2>&1; then
  if [[ $("$currant" db status --db "$db" 2>/dev/null | awk '{print $3}') == 0 ]]; then
    "$currant" db install --db "$db"
  else
    "$currant" db upgrade --db "$db"
  fi
fi

log=$(mktemp -t currantd.XXXXXX.log)
"$build_dir/daemon/currantd" --queue "$queue" --db "$db" 2>"$log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "mirroring queue" "$log" && break
  kill -0 $daemon 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
echo "currantd: $(grep 'mirroring queue' "$log" | sed 's/.*currantd: //')"

status=0
"$currant" demo --name "$queue" --existing --durability async --jobs 100000 || status=$?

kill -TERM $daemon
wait $daemon || true
trap - EXIT
echo "currantd log:"
sed 's/^/  /' "$log"
echo "PostgreSQL (currant_log, this queue's finished jobs by status):"
"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" "$db" -At -F ' ' -c \
  "SELECT '  ' || status, count(*) FROM currant_log l JOIN currant_hosts h USING (host)
   WHERE h.segment = '$queue' GROUP BY status ORDER BY status"
exit $status
