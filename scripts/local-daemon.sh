# Sourced by scripts that need currantd on the local PostgreSQL
# (scripts/local-postgres.sh): quickstart.sh, dashboard-screenshot.sh.
#
#   start_local_daemon BUILD_DIR QUEUE [currantd options...]
#
# Starts the cluster, installs or upgrades the schema, starts currantd in
# the background and waits until it mirrors. Sets db (conninfo),
# daemon_pid, daemon_log, and dashboard_url when --http was given. The
# caller stops the daemon (stop_local_daemon).

start_local_daemon() {
  local build_dir=$1 queue=$2
  shift 2
  local currant=$build_dir/tools/currant
  db=$(bash scripts/local-postgres.sh start)
  if ! "$currant" db status --db "$db" >/dev/null 2>&1; then
    if [[ $("$currant" db status --db "$db" 2>/dev/null | awk '{print $3}') == 0 ]]; then
      "$currant" db install --db "$db"
    else
      "$currant" db upgrade --db "$db"
    fi
  fi
  daemon_log=$(mktemp -t currantd.XXXXXX.log)
  "$build_dir/daemon/currantd" --queue "$queue" --db "$db" "$@" 2>"$daemon_log" &
  daemon_pid=$!
  local _
  for _ in $(seq 100); do
    grep -q "mirroring queue" "$daemon_log" && break
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$daemon_log" >&2; return 1; }
    sleep 0.1
  done
  dashboard_url=$(grep -o 'http://[^ ]*/' "$daemon_log" | head -n 1 || true)
}

stop_local_daemon() {
  kill -TERM "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
}
