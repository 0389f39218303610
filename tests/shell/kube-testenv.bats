#!/usr/bin/env bats
# Tests for scripts/kube-testenv.sh start|status|stop|env|apiserver: a real etcd,
# kube-apiserver and kube-controller-manager in a throw-away AO_TESTENV_DIR whose bin/ links
# to the built binaries (scripts/kube-testenv.sh build; this suite fails when they are missing).

bats_require_minimum_version 1.5.0

setup_file() {
    local repo
    repo="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)"
    export SCRIPT="$repo/scripts/kube-testenv.sh"
    export BUILT="${AO_TESTENV_DIR:-$repo/.testenv}/bin"
    for b in etcd kube-apiserver kube-controller-manager; do
        [[ -x "$BUILT/$b" ]] || {
            echo "$BUILT/$b is missing: run scripts/kube-testenv.sh build first" >&2
            return 1
        }
    done
    export AO_TESTENV_DIR="$BATS_FILE_TMPDIR/testenv"
    mkdir -p "$AO_TESTENV_DIR"
    ln -s "$BUILT" "$AO_TESTENV_DIR/bin"
    export RUN="$AO_TESTENV_DIR/run"
}

teardown_file() {
    bash "$SCRIPT" stop || true
}

@test "status fails before start; start prints the admin kubeconfig and status passes" {
    run bash "$SCRIPT" status
    [ "$status" -ne 0 ]
    run --separate-stderr bash "$SCRIPT" start
    [ "$status" -eq 0 ]
    [ "$output" = "$RUN/admin.kubeconfig" ]
    [[ "$stderr" == *"started in "* ]]
    run bash "$SCRIPT" status
    [ "$status" -eq 0 ]
}

@test "the PKI is private and the API server reports its pinned version" {
    [ "$(stat -c %a "$RUN/pki")" = 700 ]
    for key in "$RUN"/pki/*.key; do [ "$(stat -c %a "$key")" = 600 ]; done
    [ "$(stat -c %a "$RUN/admin.kubeconfig")" = 600 ]
    run kubectl --kubeconfig "$RUN/admin.kubeconfig" get --raw /version
    [ "$status" -eq 0 ]
    [[ "$output" == *'"gitVersion": "v1.37.2"'* ]]
    # The node serving certificate is for 127.0.0.1 and chains to the CA.
    run openssl verify -CAfile "$RUN/pki/ca.crt" "$RUN/pki/node.crt"
    [ "$status" -eq 0 ]
    openssl x509 -in "$RUN/pki/node.crt" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1"
}

@test "env prints variables a shell can eval, and kubectl works through them" {
    run --separate-stderr bash "$SCRIPT" env
    [ "$status" -eq 0 ]
    eval "$output"
    [ "$KUBECONFIG" = "$RUN/admin.kubeconfig" ]
    [[ "$AO_KUBE_SERVER" == https://127.0.0.1:* ]]
    [[ "$AO_KUBE_ETCD" == http://127.0.0.1:* ]]
    [ -f "$AO_KUBE_AUDIT_LOG" ]
    run kubectl auth whoami -o jsonpath='{.status.userInfo.username}'
    [ "$output" = admin ]
}

@test "apiserver NAME starts a second API server on the same etcd once, with its flags" {
    run --separate-stderr bash "$SCRIPT" apiserver nocache --watch-cache=false
    [ "$status" -eq 0 ]
    read -r url kubeconfig <<<"$output"
    [[ "$url" == https://127.0.0.1:* ]]
    grep -q -- "--watch-cache=false" "/proc/$(cat "$RUN/apiservers/nocache/apiserver.pid")/cmdline"
    # It sees what the main API server wrote.
    kubectl --kubeconfig "$RUN/admin.kubeconfig" create namespace via-main
    kubectl --kubeconfig "$kubeconfig" get namespace via-main
    # Each has an identity Lease of its own (they would otherwise share one per host); the
    # new one's is written shortly after it is ready.
    local hosts="" i
    for ((i = 0; i < 100; i++)); do
        hosts="$(kubectl --kubeconfig "$kubeconfig" -n kube-system get lease -l apiserver.kubernetes.io/identity \
            -o jsonpath='{range .items[*]}{.metadata.labels.kubernetes\.io/hostname}{"\n"}{end}')"
        [[ "$hosts" == *testenv-nocache* ]] && break
        sleep 0.1
    done
    [[ "$hosts" == *testenv-nocache* ]]
    [ "$(sort -u <<<"$hosts" | wc -l)" -eq 2 ]
    run --separate-stderr bash "$SCRIPT" apiserver nocache --watch-cache=false
    [ "$output" = "$url $kubeconfig" ]
    run --separate-stderr bash "$SCRIPT" apiserver nocache
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"runs with flags '--watch-cache=false'"* ]]
}

@test "start waits for a running but unresponsive API server instead of restarting it" {
    local pid server i
    pid="$(cat "$RUN/kube-apiserver.pid")"
    server="$(sed -n 's/^AO_KUBE_SERVER=//p' "$RUN/env")"
    kill -STOP "$pid"
    run bash "$SCRIPT" status
    [ "$status" -ne 0 ] || { kill -CONT "$pid"; return 1; }
    bash "$SCRIPT" start >"$BATS_TEST_TMPDIR/start" 2>&1 &
    for ((i = 0; i < 300; i++)); do
        grep -q "runs but is not ready" "$BATS_TEST_TMPDIR/start" && break
        sleep 0.1
    done
    kill -CONT "$pid"
    wait %1
    grep -q "reusing the running environment at $server" "$BATS_TEST_TMPDIR/start"
    [ "$(cat "$RUN/kube-apiserver.pid")" = "$pid" ]
}

@test "start restarts a dead kube-controller-manager and keeps the cluster" {
    local server pid
    server="$(sed -n 's/^AO_KUBE_SERVER=//p' "$RUN/env")"
    pid="$(cat "$RUN/kube-controller-manager.pid")"
    kubectl --kubeconfig "$RUN/admin.kubeconfig" create namespace survives
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    run bash "$SCRIPT" status
    [ "$status" -ne 0 ]
    run --separate-stderr bash "$SCRIPT" start
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"kube-controller-manager is not running"* ]]
    [ "$(sed -n 's/^AO_KUBE_SERVER=//p' "$RUN/env")" = "$server" ]
    [ "$(cat "$RUN/kube-controller-manager.pid")" != "$pid" ]
    bash "$SCRIPT" status
    kubectl --kubeconfig "$RUN/admin.kubeconfig" get namespace survives
}

@test "stop ends every process it started and keeps the logs" {
    local pids pid
    pids="$(cat "$RUN"/*.pid "$RUN"/apiservers/*/apiserver.pid)"
    [ "$(wc -w <<<"$pids")" -eq 4 ]
    run bash "$SCRIPT" stop
    [ "$status" -eq 0 ]
    for pid in $pids; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid still runs after stop" >&2
            return 1
        fi
    done
    [ -s "$RUN/kube-apiserver.log" ] && [ -s "$RUN/audit.log" ]
    run bash "$SCRIPT" status
    [ "$status" -ne 0 ]
}

@test "concurrent starts make one environment: one starts it, the other reuses it" {
    bash "$SCRIPT" start >"$BATS_TEST_TMPDIR/a" 2>&1 &
    bash "$SCRIPT" start >"$BATS_TEST_TMPDIR/b" 2>&1 &
    wait %1
    wait %2
    local server
    server="$(sed -n 's/^AO_KUBE_SERVER=//p' "$RUN/env")"
    [ "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | grep -c "started in ")" -eq 1 ]
    [ "$(cat "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b" | grep -c "reusing the running environment at $server")" -eq 1 ]
    bash "$SCRIPT" status
}

@test "start without binaries fails and says how to build them" {
    local empty="$BATS_TEST_TMPDIR/empty"
    mkdir -p "$empty"
    run --separate-stderr env AO_TESTENV_DIR="$empty" bash "$SCRIPT" start
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"bin/etcd is missing: run scripts/kube-testenv.sh build"* ]]
}

@test "a failed start stops what it started, keeps the logs, and retries once when a port was taken" {
    local fake="$BATS_TEST_TMPDIR/fake"
    mkdir -p "$fake/bin"
    ln -s "$BUILT/etcd" "$fake/bin/etcd"
    ln -s "$BUILT/kube-controller-manager" "$fake/bin/kube-controller-manager"
    printf '#!/bin/sh\necho "listen tcp 127.0.0.1:1: bind: address already in use" >&2\nexit 1\n' >"$fake/bin/kube-apiserver"
    chmod +x "$fake/bin/kube-apiserver"
    run --separate-stderr env AO_TESTENV_DIR="$fake" bash "$SCRIPT" start
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"a port was taken meanwhile: starting once more"* ]]
    [[ "$stderr" == *"kube-apiserver: the process exited"* ]]
    [[ "$stderr" == *"start failed: stopped what it had started"* ]]
    [ "$(grep -c "address already in use" "$fake/run/kube-apiserver.log")" -eq 1 ]
    [ -s "$fake/run.prev/kube-apiserver.log" ]
    run pgrep -f -- "--data-dir=$fake/run/etcd"
    [ "$status" -ne 0 ]
    [ ! -f "$fake/run/etcd.pid" ]
}

@test "the environment's scripts pass shellcheck" {
    cd "$(dirname "$SCRIPT")/.."
    shellcheck -x scripts/kube-testenv.sh scripts/kube-testenv-pki.sh scripts/test.sh
}
