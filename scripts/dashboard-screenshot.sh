#!/usr/bin/env bash
# Redraws docs/dashboard.png: currantd with --http on the local PostgreSQL,
# producer and consumer processes running (`currant demo`), a few jobs of a
# "payments" entrypoint failed with an error (the Python client from the
# build), and headless Chromium photographing the dashboard while they
# work. Needs a build (BUILD_DIR, default build) and chromium
# (scripts/install-deps.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}
queue=${DASHBOARD_QUEUE:-currant-dashboard} # another name keeps clear of a queue someone else uses
output=$(realpath -m "${1:-docs/dashboard.png}")

source scripts/local-daemon.sh
# The demo's own queue starts afresh: one left by an older build has another
# segment layout, which currantd refuses to open (by design).
"$build_dir/tools/currant" rm "$queue" >/dev/null 2>&1 || true # (none there: nothing to do)
# Host 9: the quick start's queue holds host 0 in the same database.
start_local_daemon "$build_dir" "$queue" --host-id 9 --http 127.0.0.1:0
trap stop_local_daemon EXIT
"$build_dir/tools/currant" demo --name "$queue" --existing --durability async --jobs 20000000 >/dev/null &
demo=$!
# Dead jobs for the "Failed jobs" table: each picked and failed with an
# exception (kept as its traceback) or a plain text.
PYTHONPATH="$build_dir/clients/python" python3 - "$queue" <<'PY'
import sys
import currant

queue = currant.Queue(sys.argv[1])
payments = queue.declare_entrypoint("payments", "async")
for n, text in enumerate(["card 4242: gateway timeout", "refund #1187", "invoice <2026-12>"]):
    queue.enqueue(payments, f'{{"n": {n}, "what": "{text}"}}'.encode())
for n, job in enumerate(queue.dequeue(payments, batch_size=3, timeout=5)):
    try:
        if n == 0:
            raise TimeoutError("payment gateway did not answer within 30 s")
        if n == 1:
            raise ValueError("refund exceeds the captured amount (<script> tags stay text)")
        queue.fail(job, error="declined by the bank: code 05")
    except Exception as error:
        queue.fail(job, error=error)
queue.close()
PY
sleep 25 # the daemon's history (one sample a second) fills while the demo runs
profile=$(mktemp -d)
# The page draws the daemon's history, then samples for two seconds more.
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" \
  --hide-scrollbars --window-size=1280,1000 --virtual-time-budget=2000 \
  --screenshot="$output" "$dashboard_url" 2>/dev/null
rm -rf "$profile"
kill "$demo" 2>/dev/null || true
wait "$demo" 2>/dev/null || true
echo "dashboard-screenshot: wrote $output"
