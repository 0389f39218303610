#!/usr/bin/env bash
# install-browser-test.sh - what the dashboard's browser tests need (idempotent): Debian's
# chromium (apt-get, when missing and run as root) and the pinned playwright-core from
# tests/dashboard/package-lock.json (npm ci). Never a browser download: playwright-core drives
# /usr/bin/chromium, and the install runs no lifecycle scripts.
#
#   scripts/install-browser-test.sh
#
# The browser test (crates/agent-orchestrator/tests/dashboard_browser.rs) fails loudly,
# naming this script, when either is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
dir="$repo_root/tests/dashboard"
log() { printf 'install-browser-test: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if ! dpkg -s chromium >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
    [ "$(id -u)" = 0 ] || die "chromium is not installed: apt-get install chromium (as root)"
    log "installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version >&2 2>/dev/null || die "/usr/bin/chromium does not run"

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Node >= 20 is required)"
want="$(node -p "require('$dir/package.json').dependencies['playwright-core']")"
have="$(node -p "try { require('$dir/node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$have" = "$want" ]; then
    log "playwright-core $want already installed in $dir"
else
    log "installing playwright-core $want into $dir (npm ci)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error >&2 \
        || die "npm ci in $dir failed"
fi
