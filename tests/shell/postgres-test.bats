#!/usr/bin/env bats
# Tests for scripts/postgres-test.sh start|status|env|stop: a real PostgreSQL server in a
# throw-away AO_PGTEST_DIR, on loopback, as an unprivileged user, with fsync and passwords on.

bats_require_minimum_version 1.5.0

setup_file() {
    local repo
    repo="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)"
    export SCRIPT="$repo/scripts/postgres-test.sh"
    export AO_PGTEST_DIR="$BATS_FILE_TMPDIR/pgtest"
}

teardown_file() {
    bash "$SCRIPT" stop || true
}

psql_bin() { echo "$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)/psql"; }

@test "status fails before start; start prints a loopback URL and status passes" {
    run bash "$SCRIPT" status
    [ "$status" -ne 0 ]
    run --separate-stderr bash "$SCRIPT" start
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^postgres://postgres:[0-9a-f]{64}@127\.0\.0\.1:[0-9]+/postgres$ ]]
    run bash "$SCRIPT" status
    [ "$status" -eq 0 ]
    [ "$(stat -c %a "$AO_PGTEST_DIR/url")" = 600 ]
}

@test "the server runs unprivileged, on loopback, with fsync on, and wants the password" {
    local url; url="$(cat "$AO_PGTEST_DIR/url")"
    run "$(psql_bin)" "$url" -Atc "SELECT current_setting('fsync') || ' ' || current_setting('listen_addresses')"
    [ "$status" -eq 0 ]
    [ "$output" = "on 127.0.0.1" ]
    local data; data="$(cat "$AO_PGTEST_DIR/datadir")"
    [ "$(stat -c %U "$data/db")" != root ]
    run pgrep -u root -f "postgres -D $data/db"
    [ "$status" -ne 0 ]
    run env PGCONNECT_TIMEOUT=5 "$(psql_bin)" "${url/:[0-9a-f]*@/:wrong@}" -Atc "SELECT 1"
    [ "$status" -ne 0 ]
    [[ "$output" == *"password authentication failed"* ]]
}

@test "env prints the export line; a second start reuses the server" {
    run bash "$SCRIPT" env
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "export AO_TEST_DATABASE_URL=$(cat "$AO_PGTEST_DIR/url")" ]
    [ "${lines[1]}" = "export AO_TEST_DATABASE_CA=$AO_PGTEST_DIR/ca.crt" ]
    # The CA signed the server's certificate, for localhost and 127.0.0.1.
    openssl verify -CAfile "$AO_PGTEST_DIR/ca.crt" "$(cat "$AO_PGTEST_DIR/datadir")/db/server.crt"
    run --separate-stderr bash "$SCRIPT" start
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"reusing the server"* ]]
}

@test "stop stops the server and deletes its data directory" {
    local data; data="$(cat "$AO_PGTEST_DIR/datadir")"
    run bash "$SCRIPT" stop
    [ "$status" -eq 0 ]
    [ ! -e "$data" ]
    [ ! -e "$AO_PGTEST_DIR" ]
    run bash "$SCRIPT" env
    [ "$status" -ne 0 ]
    [[ "$output" == *"scripts/postgres-test.sh start"* ]]
}
