#!/usr/bin/env bash
# install-mise.sh - install the mise CLI non-interactively (idempotent).
#
# mise is taken from the npm registry: the package @jdxcode/mise-linux-<arch>
# ships the prebuilt binary itself (the umbrella package @jdxcode/mise only
# fetches that one in a preinstall script, which recent npm blocks by default).
# No other download is needed.
#
#   scripts/install-mise.sh            # install/upgrade to MISE_VERSION (global npm prefix)
#   MISE_VERSION=2026.9.15 scripts/install-mise.sh
#
# Afterwards it trusts this repo's mise.toml, so `mise tasks` / `mise run`
# work without a prompt. Where tools cannot be downloaded (CI sandboxes), use
# the tools already on PATH:
#   export MISE_OFFLINE=1 MISE_TASK_RUN_AUTO_INSTALL=0 MISE_EXEC_AUTO_INSTALL=0 \
#          MISE_NOT_FOUND_AUTO_INSTALL=0 MISE_AUTO_INSTALL=0
set -euo pipefail

MISE_VERSION="${MISE_VERSION:-2026.9.15}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

log() { printf 'install-mise: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=macos ;;
    *) die "unsupported OS $(uname -s)" ;;
esac
case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unsupported architecture $(uname -m)" ;;
esac
pkg="@jdxcode/mise-${os}-${arch}"

current=""
if command -v mise >/dev/null 2>&1; then
    current="$(mise --version 2>/dev/null | awk '{print $1}')" || current=""
fi

if [[ "$current" == "$MISE_VERSION" ]]; then
    log "mise $MISE_VERSION already installed at $(command -v mise)"
else
    if ! command -v npm >/dev/null 2>&1; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "npm not found; installing it with apt-get"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq npm >/dev/null
        else
            die "npm is required to install mise (install Node.js/npm first)"
        fi
    fi
    log "installing $pkg@$MISE_VERSION with npm (was: ${current:-not installed})"
    npm install --global --no-audit --no-fund --loglevel=error "$pkg@$MISE_VERSION" >&2
    hash -r
    command -v mise >/dev/null 2>&1 || die "mise not on PATH after install (npm prefix: $(npm prefix -g)/bin)"
    got="$(mise --version | awk '{print $1}')"
    [[ "$got" == "$MISE_VERSION" ]] || die "installed mise reports version '$got', expected $MISE_VERSION"
    log "installed mise $got at $(command -v mise)"
fi

if [[ -f "$repo_root/mise.toml" ]]; then
    mise trust --quiet "$repo_root/mise.toml" >&2
    log "trusted $repo_root/mise.toml"
fi
