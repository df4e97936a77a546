#!/usr/bin/env bash
# A local PostgreSQL cluster for currant's quick start and benchmarks (the
# tests start their own): `start` creates it on first use and starts it,
# `stop` stops it, `conninfo` prints the libpq connection string.
#
# The cluster lives in CURRANT_PG_DIR (default /tmp/currant-postgres),
# listens only on a Unix socket in that directory, trusts local users. As
# root the server runs as user `postgres`.
set -euo pipefail

dir=${CURRANT_PG_DIR:-/tmp/currant-postgres}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_server=()
if ((EUID == 0)); then as_server=(runuser -u postgres --); fi

conninfo="host=$dir port=5432 user=postgres dbname=postgres"

case ${1:-} in
  start)
    if [[ ! -d $dir/data ]]; then
      mkdir -p "$dir"
      if ((EUID == 0)); then chown postgres:postgres "$dir"; fi
      "${as_server[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if ! "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -w -l "$dir/server.log" \
        -o "-k $dir -c listen_addresses='' -p 5432" start >/dev/null
    fi
    echo "$conninfo"
    ;;
  stop)
    if [[ -d $dir/data ]]; then
      "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
    ;;
  conninfo)
    echo "$conninfo"
    ;;
  *)
    echo "usage: $0 start|stop|conninfo" >&2
    exit 2
    ;;
esac
