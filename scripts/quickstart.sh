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

source scripts/local-daemon.sh
# The demo's own queue starts afresh: one left by an older build has another
# segment layout, which currantd refuses to open (by design).
"$build_dir/tools/currant" rm "$queue" >/dev/null 2>&1 || true # (none there: nothing to do)
# Port 0: the kernel picks a free port; the log line gives the dashboard's address.
start_local_daemon "$build_dir" "$queue" --http 127.0.0.1:0
trap stop_local_daemon EXIT
echo "currantd: $(grep 'mirroring queue' "$daemon_log" | sed 's/.*currantd: //')"
echo "currantd: dashboard and metrics at $dashboard_url (while the daemon runs)"

status=0
"$currant" demo --name "$queue" --existing --durability async --jobs 100000 || status=$?

stop_local_daemon
trap - EXIT
echo "currantd log:"
sed 's/^/  /' "$daemon_log"
echo "PostgreSQL (currant_log, this queue's finished jobs by status):"
"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql" "$db" -At -F ' ' -c \
  "SELECT '  ' || status, count(*) FROM currant_log l JOIN currant_hosts h USING (host)
   WHERE h.segment = '$queue' GROUP BY status ORDER BY status"
exit $status
