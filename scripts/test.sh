#!/usr/bin/env bash
# test.sh - the project's one test command (README). Idempotent and non-interactive: on a
# fresh Debian machine (as root) it installs what the tests need, then runs every suite:
#   - the Rust workspace (unit, API, lifecycle, crash, Kubernetes-simulator and
#     Claude Code end-to-end tests; the latter use the real, pinned Claude Code CLI),
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

log "cargo test (workspace)"
cargo test --workspace --locked

log "ops tests"
bash scripts/test-ops.sh
