#!/usr/bin/env bash
# A real Kubernetes control plane for the tests, started the way envtest starts one:
# etcd, kube-apiserver (RBAC, Pod Security admission, service-account tokens, audit log)
# and kube-controller-manager, built from pinned sources into an ignored folder.
#
#   scripts/kube-testenv.sh build    build the pinned binaries into .testenv/bin
#   scripts/kube-testenv.sh start    start them on loopback; prints the admin kubeconfig path
#   scripts/kube-testenv.sh stop     stop them
#   scripts/kube-testenv.sh env      print the environment's variables for a shell (eval)
#
# Tests (crates/ao-kube-testenv) call `start` themselves when AO_KUBE_TESTENV is unset;
# they fail when the environment can't start. They never skip.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.13
KWOK_VERSION=v0.8.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTENV="${AO_TESTENV_DIR:-$ROOT/.testenv}"
BIN="$TESTENV/bin"
MOD="$TESTENV/mod"

log() { printf 'kube-testenv: %s\n' "$*" >&2; }

# The staging modules k8s.io/kubernetes replaces with ./staging/src/...: each is published
# at the matching v0.x version, so the module can be required from outside the tree.
staging_modules() {
  local gomod
  gomod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.mod"
  [[ -f "$gomod" ]] || go mod download k8s.io/kubernetes@"$KUBERNETES_VERSION"
  grep -E '=> \./staging/src/' "$gomod" | awk '{print $1}'
}

build() {
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  mkdir -p "$BIN" "$MOD/kubernetes" "$MOD/etcd"
  local stamp="$KUBERNETES_VERSION/$ETCD_VERSION/$KWOK_VERSION"
  if [[ -f "$BIN/.stamp" && "$(cat "$BIN/.stamp")" == "$stamp" ]] \
    && [[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/kwok" ]]; then
    log "binaries for $stamp are built"; return 0
  fi
  local start=$SECONDS
  (
    cd "$MOD/kubernetes"
    [[ -f go.mod ]] || go mod init agent-orchestrator/testenv/kubernetes >/dev/null 2>&1
    go mod edit -require=k8s.io/kubernetes@"$KUBERNETES_VERSION"
    local m
    for m in $(staging_modules); do go mod edit -replace="$m=$m@$STAGING_VERSION"; done
    go get k8s.io/kubernetes/cmd/kube-apiserver@"$KUBERNETES_VERSION" \
      k8s.io/kubernetes/cmd/kube-controller-manager@"$KUBERNETES_VERSION" >/dev/null
    log "building kube-apiserver and kube-controller-manager $KUBERNETES_VERSION"
    go build -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -o "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
  )
  (
    cd "$MOD/etcd"
    [[ -f go.mod ]] || go mod init agent-orchestrator/testenv/etcd >/dev/null 2>&1
    go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION" >/dev/null
    log "building etcd $ETCD_VERSION"
    go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  log "building kwok $KWOK_VERSION"
  GOBIN="$BIN" go install sigs.k8s.io/kwok/cmd/kwok@"$KWOK_VERSION"
  echo "$stamp" >"$BIN/.stamp"
  log "built in $((SECONDS - start)) s"
}

case "${1:-}" in
  build) build ;;
  *) echo "usage: $0 build|start|stop|env" >&2; exit 2 ;;
esac
