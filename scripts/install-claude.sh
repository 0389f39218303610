#!/usr/bin/env bash
# install-claude.sh - install the pinned Claude Code CLI into a project-local prefix (idempotent).
#
# The worker (crates/ao-worker) drives Claude Code headless; its tests run the real CLI against
# a fake Anthropic API (crates/ao-testkit). This script installs exactly the version the worker
# image (images/worker/Dockerfile) ships, so local runs, CI and the image agree.
#
#   scripts/install-claude.sh                 # installs into <repo>/.tools/claude, prints the binary path
#   CLAUDE_PREFIX=/opt/claude scripts/install-claude.sh
#
# The npm package's postinstall fetches the native binary, so lifecycle scripts must run
# (never --ignore-scripts). Versions after this one require Node >= 22; this one runs on Node 20.
# The last line on stdout is the absolute path of the `claude` binary; logs go to stderr.
set -euo pipefail

CLAUDE_CODE_VERSION="2.1.190"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
prefix="${CLAUDE_PREFIX:-${repo_root}/.tools/claude}"
bin="${prefix}/node_modules/.bin/claude"

log() { printf 'install-claude: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Node >= 18 is required)"

installed_version() {
    [ -x "$bin" ] || return 1
    # `claude --version` prints e.g. "2.1.190 (Claude Code)".
    DISABLE_AUTOUPDATER=1 "$bin" --version 2>/dev/null | awk '{print $1}'
}

if [ "$(installed_version || true)" = "$CLAUDE_CODE_VERSION" ]; then
    log "Claude Code ${CLAUDE_CODE_VERSION} already installed in ${prefix}"
else
    log "installing @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION} into ${prefix}"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" >&2 \
        || die "npm install of @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION} failed"
    got="$(installed_version || true)"
    [ "$got" = "$CLAUDE_CODE_VERSION" ] \
        || die "installed claude reports version '${got}', expected ${CLAUDE_CODE_VERSION}"
    log "installed Claude Code ${got}"
fi

printf '%s\n' "$bin"
