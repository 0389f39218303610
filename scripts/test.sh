#!/usr/bin/env bash
# test.sh - the project's one test command (README). Idempotent and non-interactive: on a
# fresh Debian machine (as root) it installs what the tests need, then runs every suite:
#   - the Rust workspace (unit, API, lifecycle, crash, Kubernetes-simulator and
#     Claude Code end-to-end tests; the latter use the real, pinned Claude Code CLI; the
#     dashboard in Debian's chromium through playwright-core, scripts/install-browser-test.sh),
#     including the tests on a real Kubernetes API server: this script builds the pinned
#     etcd, kube-apiserver and kube-controller-manager (scripts/kube-testenv.sh build; needs
#     Go), the tests start the environment on demand, and it is stopped when the run ends,
#   - the ops suites (bats for scripts/, kustomize render for deploy/, Pulumi mocks for iac/).
# A missing tool is installed or fails the run loudly; nothing is skipped.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo_root"
log() { printf '\n==> test: %s\n' "$*" >&2; }

need=()
command -v git >/dev/null 2>&1 || need+=(git)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v ps >/dev/null 2>&1 || need+=(procps)
# The Kubernetes test environment's PKI and health checks (scripts/kube-testenv.sh).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]} > 0)); then
    log "installing with apt-get: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

log "installing the pinned Claude Code CLI"
AO_CLAUDE_BIN="$(bash scripts/install-claude.sh | tail -n 1)"
export AO_CLAUDE_BIN
"$AO_CLAUDE_BIN" --version >&2

# The real Kubernetes test environment (README "Test on a real API server"). Go is needed to
# build it; the Go toolchain's usual place is tried when `go` is not on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || {
    echo "test: go is not installed: the Kubernetes test environment is built from source with Go >= 1.26 (https://go.dev/dl/)" >&2
    exit 1
}
log "building the Kubernetes test environment (scripts/kube-testenv.sh build; $(go version))"
build_start=$SECONDS
bash scripts/kube-testenv.sh build
log "Kubernetes test environment built in $((SECONDS - build_start)) s"
# What this run started is stopped when it ends, pass or fail (each entry is run by the EXIT
# trap); what was already running before (a developer's environment) is left as it was.
cleanups=()
on_exit() {
    local c
    for c in "${cleanups[@]}"; do eval "$c" || true; done
}
trap on_exit EXIT
# Interrupted or terminated: exit, so that the EXIT trap runs.
trap 'exit 130' INT
trap 'exit 143' TERM
# Tests start the Kubernetes environment on demand.
if bash scripts/kube-testenv.sh status; then
    log "reusing the running Kubernetes test environment (left running afterwards)"
else
    cleanups+=('log "stopping the Kubernetes test environment"; bash scripts/kube-testenv.sh stop')
fi

# The PostgreSQL store's tests (crates/ao-store-postgres) run on a real server: Debian's
# PostgreSQL (installed if missing) on loopback, as an unprivileged user, in a temporary data
# directory; each test creates its own database on it (ao_testkit::postgres).
if bash scripts/postgres-test.sh status; then
    log "reusing the running PostgreSQL test server (left running afterwards)"
else
    log "starting PostgreSQL for the tests (scripts/postgres-test.sh start)"
    cleanups+=('log "stopping the PostgreSQL test server"; bash scripts/postgres-test.sh stop')
    bash scripts/postgres-test.sh start >/dev/null
fi
eval "$(bash scripts/postgres-test.sh env)"

# The dashboard's browser test (crates/agent-orchestrator/tests/dashboard_browser.rs) drives
# Debian's chromium with the pinned playwright-core; it fails when either is missing.
log "installing chromium and playwright-core for the dashboard's browser test"
bash scripts/install-browser-test.sh

log "cargo test (workspace)"
cargo test --workspace --locked

# The dashboard list-page benchmark in its quick mode (crates/ao-api/benches/dashboard_list.rs):
# a smoke run of its 100,000-task fill and pages; its figures are measured with `cargo bench`.
log "benchmark smoke run (dashboard_list --quick)"
cargo test --locked -p ao-api --bench dashboard_list -- --quick

# The real-API-server benchmark in its quick mode (crates/agent-orchestrator/benches/kube_api.rs):
# a smoke run that checks its correctness asserts; its figures are measured with `cargo bench`.
log "benchmark smoke run (kube_api --quick)"
cargo test --locked -p agent-orchestrator --bench kube_api -- --quick

# The failover benchmark in its smoke configuration (crates/agent-orchestrator/benches/ha_failover.rs):
# two SIGKILLs of the leader among three replicas on the test PostgreSQL, with a 2 s lease.
log "benchmark smoke run (ha_failover)"
cargo test --locked -p agent-orchestrator --bench ha_failover

# The PostgreSQL admission benchmark in its smoke configuration
# (crates/ao-store-postgres/benches/admission.rs): batched and one-per-transaction creates, and
# scheduler claims beside them, on the test PostgreSQL.
log "benchmark smoke run (ao-store-postgres admission)"
cargo test --locked -p ao-store-postgres --bench admission

log "ops tests"
bash scripts/test-ops.sh
