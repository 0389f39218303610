#!/usr/bin/env bash
# A real PostgreSQL server for the tests (crates/ao-store-postgres and the HA tests): Debian's
# binaries, on 127.0.0.1 only, on a free port, run as an unprivileged user (PostgreSQL refuses
# to run as root) in a temporary data directory it owns, fsync on, password (SCRAM) auth.
#
#   scripts/postgres-test.sh start    start a server (or reuse the running one); prints its URL
#   scripts/postgres-test.sh status   exit 0 only when the server answers
#   scripts/postgres-test.sh stop     stop it and delete its data directory
#   scripts/postgres-test.sh env      print `export AO_TEST_DATABASE_URL=...` for a shell (eval)
#
# Tests read AO_TEST_DATABASE_URL (else the URL file below) and create a fresh database per
# test (ao_testkit::postgres); they fail loudly, never skip, when no server answers.
# AO_PGTEST_DIR (default <repo>/.pgtest) holds the state of one running server: url (mode
# 0600, it holds the password), datadir, port, ca.crt (the CA of the server's TLS certificate).
# PostgreSQL is installed from Debian (apt-get, as root) when no /usr/lib/postgresql/*/bin is there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${AO_PGTEST_DIR:-$ROOT/.pgtest}"
# Connections: each store opens a pool (16 by default) and a listener; HA tests run several.
MAX_CONNECTIONS="${AO_PGTEST_MAX_CONNECTIONS:-400}"

log() { printf 'postgres-test: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pg_bin() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]] || return 1
  printf '%s\n' "$dir"
}

install_postgres() {
  pg_bin >/dev/null && return 0
  [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin) and this is not root: apt-get install postgresql"
  log "installing PostgreSQL from Debian (apt-get install postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  pg_bin >/dev/null || die "apt-get installed postgresql but /usr/lib/postgresql/*/bin/{initdb,pg_ctl,postgres} are missing"
}

# The user the server runs as: ourselves, or (as root) Debian's `postgres`, else `nobody`.
run_user() {
  if [[ "$(id -u)" -ne 0 ]]; then id -un
  elif id postgres >/dev/null 2>&1; then echo postgres
  else echo nobody
  fi
}

as_user() {
  local user; user="$(run_user)"
  if [[ "$user" == "$(id -un)" ]]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

status() {
  [[ -f "$STATE/datadir" && -f "$STATE/url" ]] || return 1
  local bin data; bin="$(pg_bin)" || return 1; data="$(cat "$STATE/datadir")"
  as_user "$bin/pg_ctl" -D "$data/db" status >/dev/null 2>&1 || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$STATE/port")" -t 5
}

start() {
  if status; then log "reusing the server at 127.0.0.1:$(cat "$STATE/port")"; cat "$STATE/url"; return 0; fi
  stop >/dev/null 2>&1 || true
  install_postgres
  local bin user data password
  bin="$(pg_bin)"; user="$(run_user)"
  data="$(mktemp -d "${TMPDIR:-/tmp}/ao-pgtest.XXXXXX")"
  [[ "$user" == "$(id -un)" ]] || chown "$user" "$data"
  chmod 700 "$data"
  password="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s\n' "$password" > "$data/pwfile"
  [[ "$user" == "$(id -un)" ]] || chown "$user" "$data/pwfile"
  chmod 600 "$data/pwfile"
  log "initdb as $user in $data ($("$bin/postgres" --version))"
  as_user "$bin/initdb" -D "$data/db" -U postgres --pwfile="$data/pwfile" -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"$data/initdb.log" 2>&1 \
    || { cat "$data/initdb.log" >&2; die "initdb failed"; }
  rm -f "$data/pwfile"
  # TLS as a real database would offer it: a throwaway CA signs a certificate for localhost and
  # 127.0.0.1, so tests can connect with sslmode=require and with verify-full against the CA.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ao-pgtest CA" \
    -keyout "$data/ca.key" -out "$data/ca.crt" >/dev/null 2>&1 || die "openssl could not make the test CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$data/db/server.key" \
    -out "$data/server.csr" >/dev/null 2>&1 || die "openssl could not make the server key"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$data/san.ext"
  openssl x509 -req -in "$data/server.csr" -CA "$data/ca.crt" -CAkey "$data/ca.key" -CAcreateserial \
    -days 2 -extfile "$data/san.ext" -out "$data/db/server.crt" >/dev/null 2>&1 || die "openssl could not sign the server certificate"
  rm -f "$data/ca.key" "$data/server.csr" "$data/san.ext"
  [[ "$user" == "$(id -un)" ]] || chown "$user" "$data/db/server.key" "$data/db/server.crt"
  chmod 600 "$data/db/server.key"
  local port="" try
  for try in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    port_free "$port" || continue
    # Loopback only; the Unix socket lives in the data directory (owned by $user).
    if as_user "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$data -c fsync=on -c max_connections=$MAX_CONNECTIONS -c ssl=on" \
      start >/dev/null; then
      break
    fi
    log "the server did not start on port $port (try $try):"; tail -n 5 "$data/server.log" >&2 || true
    port=""
  done
  [[ -n "$port" ]] || die "PostgreSQL did not start; see $data/server.log"
  mkdir -p "$STATE"
  printf '%s\n' "$data" > "$STATE/datadir"
  printf '%s\n' "$port" > "$STATE/port"
  cp "$data/ca.crt" "$STATE/ca.crt"
  (umask 077; printf 'postgres://postgres:%s@127.0.0.1:%s/postgres\n' "$password" "$port" > "$STATE/url")
  log "PostgreSQL is up on 127.0.0.1:$port (data $data, log $data/server.log)"
  cat "$STATE/url"
}

stop() {
  [[ -f "$STATE/datadir" ]] || { log "no server to stop"; return 0; }
  local data bin; data="$(cat "$STATE/datadir")"
  if bin="$(pg_bin)" && [[ -d "$data/db" ]]; then
    as_user "$bin/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
  fi
  case "$data" in */ao-pgtest.*) rm -rf "$data" ;; esac
  rm -rf "$STATE"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  env)
    status || die "no server is running: run scripts/postgres-test.sh start"
    printf 'export AO_TEST_DATABASE_URL=%q\n' "$(cat "$STATE/url")"
    printf 'export AO_TEST_DATABASE_CA=%q\n' "$STATE/ca.crt"
    ;;
  *) echo "usage: $0 start|status|stop|env" >&2; exit 2 ;;
esac
