#!/usr/bin/env bash
# schemathesis.sh - check that the server agrees with its own OpenAPI document.
#
# Starts `agent-orchestrator serve` on loopback (fresh data dir, an API token, and a worker
# command that exits at once), then runs Schemathesis (pinned, from PyPI, in its own venv)
# over every operation of /openapi.json with every check. Fails on any 5xx, any response that
# the document does not describe (status, content type, headers, body schema), any
# schema-violating request the server accepts and any valid one it refuses.
#
# Usage: scripts/schemathesis.sh            # builds the debug binary if needed
#   ST_MIN_CASES=N                          fail unless at least N cases ran (default 1000)
#   AO_BIN=path/to/agent-orchestrator       use this binary instead of building
#   ST_MAX_EXAMPLES=N                       cases per operation and phase (default 60)
#   ST_SEED=N                               reproduce a run (default: fixed seed 1)
#   ST_VENV=dir                             where the venv lives (default: a cache dir)
#
# The worker callback routes need a per-task token that only the task's worker gets. The run
# sends the API token there, so those routes are exercised as an outsider sees them: every
# request must be refused, as documented (401 before the body is read).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo_root"
log() { printf '\n==> schemathesis: %s\n' "$*" >&2; }
die() { printf 'schemathesis: ERROR: %s\n' "$*" >&2; exit 1; }

ST_VERSION="4.32.5"
max_examples="${ST_MAX_EXAMPLES:-60}"
min_cases="${ST_MIN_CASES:-1000}"
seed="${ST_SEED:-1}"
venv="${ST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-orchestrator/schemathesis-$ST_VERSION}"

# ---------------------------------------------------------------- schemathesis --
python="$(command -v python3 || true)"
if [[ -z "$python" ]] || ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "python3 with venv is needed (3.10 or later)"
    fi
    log "installing python3 and python3-venv with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
    python="$(command -v python3)"
fi
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    log "installing schemathesis $ST_VERSION into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "python3 -m venv failed"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$venv/bin/st" --version >&2

# -------------------------------------------------------------------- server --
if [[ -z "${AO_BIN:-}" ]]; then
    log "building agent-orchestrator"
    cargo build --locked --quiet -p agent-orchestrator --bin agent-orchestrator
    AO_BIN="${CARGO_TARGET_DIR:-$repo_root/target}/debug/agent-orchestrator"
fi
[[ -x "$AO_BIN" ]] || die "no executable at $AO_BIN"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

token="st-$("$python" -c 'import secrets; print(secrets.token_hex(24))')"
log "starting the server"
"$AO_BIN" serve --log-format json --listen 127.0.0.1:0 --data-dir "$work/data" \
    --api-tokens "$token" --worker-command /bin/true --max-concurrency 8 \
    --max-queued 100000 >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

addr=""
for _ in $(seq 1 100); do
    addr="$("$python" - "$work/server.log" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("message") == "listening":
        print(v["addr"])
        break
EOF
)"
    [[ -n "$addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited"; }
    sleep 0.1
done
[[ -n "$addr" ]] || { cat "$work/server.log" >&2; die "the server did not start listening"; }
base="http://$addr"
log "server at $base"

# ----------------------------------------------------------------------- run --
log "running every check over every operation ($max_examples examples each, seed $seed)"
st_rc=0
# Run from the scratch folder: Schemathesis keeps caches (crashes seen, examples) in the
# current directory, and each run starts from none.
(cd "$work" && "$venv/bin/st" --config-file "$repo_root/scripts/schemathesis.toml" run "$base/openapi.json" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --header "Authorization: Bearer $token" \
    --request-timeout 10 \
    --no-color \
    --suppress-health-check too_slow \
    2>&1) | tee "$work/st.out" || st_rc=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 50 "$work/server.log" >&2
    die "the server died during the run"
fi
if grep -q '"level":"ERROR"' "$work/server.log"; then
    grep '"level":"ERROR"' "$work/server.log" | head -n 20 >&2
    die "the server logged errors during the run"
fi

# "Test cases:" is followed by "N generated, ..." in the summary.
cases="$(grep -A1 '^Test cases:' "$work/st.out" | grep -oE '[0-9]+ generated' | grep -oE '[0-9]+' || true)"
((st_rc == 0)) || die "schemathesis found mismatches (exit $st_rc)"
[[ -n "$cases" ]] || die "could not read the number of test cases from schemathesis' summary"
((cases >= min_cases)) || die "only $cases test cases ran; at least $min_cases are required"
echo "schemathesis: $cases test cases, no mismatch" >&2
