#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests and benches (Debian's postgresql, any major version):
#   scripts/postgres.sh start   initdb into $ICE_PG_DIR (default /tmp/ice-pg) and start it on
#                               127.0.0.1:$ICE_PG_PORT (default 54329); prints the URL to use
#   scripts/postgres.sh stop    stops it and removes its directory
# initdb refuses to run as root, so as root the server runs as the `postgres` user Debian creates.
set -euo pipefail
DIR=${ICE_PG_DIR:-/tmp/ice-pg}
PORT=${ICE_PG_PORT:-54329}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z "$BIN" ]]; then
  echo "scripts/postgres.sh: no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql" >&2
  exit 1
fi
as_owner=()
if [[ $(id -u) -eq 0 ]]; then as_owner=(runuser -u postgres --); fi

case "${1:-}" in
  start)
    if [[ -f "$DIR/PG_VERSION" ]] && "${as_owner[@]}" "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
      echo "postgres://postgres@127.0.0.1:$PORT/postgres"
      exit 0
    fi
    if [[ ! -f "$DIR/PG_VERSION" ]]; then
      mkdir -p "$DIR"
      if [[ $(id -u) -eq 0 ]]; then chown postgres "$DIR"; fi
      "${as_owner[@]}" "$BIN/initdb" -D "$DIR" -A trust -U postgres -E UTF8 --no-locale >/dev/null
    fi
    # Tests start many connections at once (three servers, each with a pool); fsync stays on: the
    # numbers the bench prints are those of a durable commit.
    "${as_owner[@]}" "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    echo "postgres://postgres@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    if [[ -f "$DIR/postmaster.pid" ]]; then "${as_owner[@]}" "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null || true; fi
    rm -rf "$DIR"
    ;;
  *)
    echo "usage: scripts/postgres.sh start|stop" >&2
    exit 2
    ;;
esac
