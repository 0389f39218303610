#!/usr/bin/env bash
# serve.sh - the README's run command: the orchestrator from this checkout, with the pinned
# Claude Code its built-in worker runs.
#
#   scripts/serve.sh [serve options]     # e.g. scripts/serve.sh --max-concurrency 8
#
# Unless AO_CLAUDE_BIN is set or the pinned Claude Code is on PATH, it runs
# scripts/install-claude.sh (idempotent: instant when the pinned version is already in
# .tools/claude, or in CLAUDE_PREFIX) and exports AO_CLAUDE_BIN to what it installed; then
# `cargo run --release -- serve "$@"`. If the install fails (no npm, no network) the server
# still starts: its start-up warning and `agent-orchestrator doctor` say what is missing, and
# submissions answer 503 `agent_unavailable` until Claude Code is there (no restart needed).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
log() { printf 'serve: %s\n' "$*" >&2; }

pinned="$(sed -n 's/^CLAUDE_CODE_VERSION="\(.*\)"$/\1/p' "$repo_root/scripts/install-claude.sh")"
on_path="$(command -v claude || true)"
if [[ -z "${AO_CLAUDE_BIN:-}" ]] \
    && ! { [[ -n "$on_path" ]] \
        && [[ "$(DISABLE_AUTOUPDATER=1 "$on_path" --version 2>/dev/null | awk '{print $1}')" == "$pinned" ]]; }; then
    if bin="$("$repo_root/scripts/install-claude.sh" | tail -n 1)" && [[ -x "$bin" ]]; then
        export AO_CLAUDE_BIN="$bin"
        log "Claude Code $pinned: $AO_CLAUDE_BIN"
    else
        log "could not install Claude Code $pinned (see above); starting anyway: tasks wait for it"
    fi
fi

exec cargo run --release --manifest-path "$repo_root/Cargo.toml" -p agent-orchestrator \
    --bin agent-orchestrator -- serve "$@"
