#!/usr/bin/env bash
# A real Kubernetes control plane for the tests, started the way envtest starts one:
# etcd, kube-apiserver (RBAC, Pod Security admission, service-account tokens, audit log)
# and kube-controller-manager, built from pinned sources into an ignored folder.
#
#   scripts/kube-testenv.sh build     build the pinned binaries into $AO_TESTENV_DIR/bin
#   scripts/kube-testenv.sh start     start them on loopback (or reuse a running environment);
#                                     prints the admin kubeconfig path
#   scripts/kube-testenv.sh status    exit 0 only when the API server answers /readyz
#   scripts/kube-testenv.sh stop      stop every process `start` started; logs stay
#   scripts/kube-testenv.sh env       print the environment's variables for a shell (eval)
#   scripts/kube-testenv.sh apiserver NAME [kube-apiserver flags...]
#                                     a second kube-apiserver on the same etcd with extra
#                                     flags, started once per NAME; prints "URL KUBECONFIG"
#
# AO_TESTENV_DIR (default <repo>/.testenv) holds bin/ (built once) and run/ (one running
# environment: pki/, etcd data, kubeconfigs, the audit log and each component's log).
# Tests (crates/ao-kube-testenv) call `start` themselves; they fail loudly when the
# environment can't start. They never skip.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2
STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.6.13

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTENV="${AO_TESTENV_DIR:-$ROOT/.testenv}"
BIN="$TESTENV/bin"
MOD="$TESTENV/mod"
RUN="$TESTENV/run"
PKI="$RUN/pki"
# Seconds to wait for each component to become ready.
READY_TIMEOUT="${AO_TESTENV_READY_TIMEOUT:-120}"

log() { printf 'kube-testenv: %s\n' "$*" >&2; }
# make_pki and kubeconfig: the CA, certificates and kubeconfigs of an environment.
# shellcheck source=scripts/kube-testenv-pki.sh
source "$ROOT/scripts/kube-testenv-pki.sh"
die() { log "error: $*"; exit 1; }

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
  # "+version": the binaries report their version (built before that, they said v0.0.0).
  local stamp="$KUBERNETES_VERSION/$ETCD_VERSION+version"
  if [[ -f "$BIN/.stamp" && "$(cat "$BIN/.stamp")" == "$stamp" ]] \
    && [[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" ]]; then
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
    # What Kubernetes' own build (hack/lib/version.sh) stamps in, so that the server reports
    # its version (`kubectl version`, /version) and clients send it in their User-Agent.
    local major="${KUBERNETES_VERSION#v}" ldflags="" pkg
    major="${major%%.*}"
    local minor="${KUBERNETES_VERSION#v"$major".}"
    minor="${minor%%.*}"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    go build -ldflags="$ldflags" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -ldflags="$ldflags" -o "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
  )
  (
    cd "$MOD/etcd"
    [[ -f go.mod ]] || go mod init agent-orchestrator/testenv/etcd >/dev/null 2>&1
    go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION" >/dev/null
    log "building etcd $ETCD_VERSION"
    go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$stamp" >"$BIN/.stamp"
  log "built in $((SECONDS - start)) s"
}

# ------------------------------------------------------------------------ start --

# A loopback port nothing listens on, below Linux's ephemeral range (32768+) so that
# outgoing connections don't take it before the component binds it.
free_port() {
  local p tries=0
  while ((tries++ < 200)); do
    p=$((20000 + RANDOM % 12000))
    [[ " ${TAKEN_PORTS:-} " == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      TAKEN_PORTS="${TAKEN_PORTS:-} $p"
      echo "$p"
      return 0
    fi
  done
  die "no free loopback port found"
}

# Runs a component detached from the caller: own session, stdin from /dev/null, output to
# its log, and the start lock (fd 9) closed, so neither a caller's pipe nor the lock is held.
launch() {
  local name="$1"
  shift
  setsid "$@" </dev/null >>"$RUN/$name.log" 2>&1 9>&- &
  echo $! >"$RUN/$name.pid"
}

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

tails() {
  local f
  for f in "$RUN"/*.log "$RUN"/apiservers/*/apiserver.log; do
    [[ -f "$f" && "$f" != "$RUN/audit.log" ]] || continue
    log "---- last lines of $f"
    tail -n 25 "$f" >&2
  done
}

curl_admin() {
  curl --silent --show-error --max-time 5 --cacert "$PKI/ca.crt" \
    --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

# wait_for WHAT PIDFILE COMMAND...: polls COMMAND until it succeeds; fails when the
# component's process is gone or READY_TIMEOUT passes.
wait_for() {
  local what="$1" pidfile="$2" deadline=$((SECONDS + READY_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    alive "$pidfile" || { tails; die "$what: the process exited (log: ${pidfile%.pid}.log)"; }
    ((SECONDS < deadline)) || { tails; die "$what: not ready after ${READY_TIMEOUT} s"; }
    sleep 0.2
  done
}

readyz() { [[ "$(curl_admin "$1/readyz")" == ok ]]; }

apiserver_flags() {
  local port="$1" audit_log="$2"
  echo --etcd-servers="$ETCD_URL" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" \
    --endpoint-reconciler-type=none \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --audit-policy-file="$RUN/audit-policy.yaml" --audit-log-path="$audit_log" \
    --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=1000000 --audit-log-maxbackup=0 \
    --kubelet-client-certificate="$PKI/kubelet-client.crt" --kubelet-client-key="$PKI/kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-cluster-ip-range=10.0.0.0/24
}

# kube-controller-manager with every default controller, each as its own ServiceAccount;
# ready when the `default` namespace has its `default` ServiceAccount.
start_controller_manager() {
  local server="$1"
  log "kube-controller-manager $KUBERNETES_VERSION"
  launch kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/kube-controller-manager.kubeconfig" \
    --use-service-account-credentials \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --leader-elect=false --secure-port=0
  wait_for "kube-controller-manager (the default ServiceAccount)" "$RUN/kube-controller-manager.pid" \
    curl_admin --fail "$server/api/v1/namespaces/default/serviceaccounts/default"
}

start_fresh() {
  local t0=$SECONDS
  for b in etcd kube-apiserver kube-controller-manager; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing: run scripts/kube-testenv.sh build (needs Go), or point AO_TESTENV_DIR at a folder whose bin/ has the binaries"
  done
  if [[ -d "$RUN" ]]; then
    # The last environment's logs stay in run.prev (its data, images and nodes do not).
    rm -rf "$RUN.prev"
    mv "$RUN" "$RUN.prev"
    rm -rf "$RUN.prev/etcd" "$RUN.prev/images" "$RUN.prev/nodes"
  fi
  mkdir -p "$RUN"
  chmod 0755 "$RUN"
  # A start that fails stops what it has started (the logs stay).
  trap 'stop_all; log "start failed: stopped what it had started (logs in $RUN)"' EXIT
  make_pki
  local etcd_port etcd_peer api_port
  etcd_port="$(free_port)"
  etcd_peer="$(free_port)"
  api_port="$(free_port)"
  ETCD_URL="http://127.0.0.1:$etcd_port"
  local server="https://127.0.0.1:$api_port"

  log "etcd $ETCD_VERSION on $ETCD_URL"
  launch etcd "$BIN/etcd" --name=testenv --data-dir="$RUN/etcd" \
    --listen-client-urls="$ETCD_URL" --advertise-client-urls="$ETCD_URL" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="testenv=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level=warn
  wait_for etcd "$RUN/etcd.pid" curl --silent --fail --max-time 2 "$ETCD_URL/health"

  cat >"$RUN/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
POLICY
  log "kube-apiserver $KUBERNETES_VERSION on $server"
  # shellcheck disable=SC2046 # the flags are words without spaces
  launch kube-apiserver "$BIN/kube-apiserver" $(apiserver_flags "$api_port" "$RUN/audit.log")
  wait_for kube-apiserver "$RUN/kube-apiserver.pid" readyz "$server"

  kubeconfig "$RUN/admin.kubeconfig" "$server" admin
  kubeconfig "$RUN/node.kubeconfig" "$server" node-client
  kubeconfig "$RUN/kube-controller-manager.kubeconfig" "$server" kube-controller-manager
  start_controller_manager "$server"

  cat >"$RUN/env" <<ENV
AO_TESTENV_DIR=$TESTENV
AO_KUBE_SERVER=$server
AO_KUBE_ADMIN_KUBECONFIG=$RUN/admin.kubeconfig
AO_KUBE_AUDIT_LOG=$RUN/audit.log
AO_KUBE_ETCD=$ETCD_URL
AO_KUBE_PKI=$PKI
KUBECONFIG=$RUN/admin.kubeconfig
ENV
  trap - EXIT
  log "started in $((SECONDS - t0)) s (kubectl: export KUBECONFIG=$RUN/admin.kubeconfig)"
}

# The environment's server URL, from run/env.
server_url() { [[ ! -f "$RUN/env" ]] || sed -n 's/^AO_KUBE_SERVER=//p' "$RUN/env"; }

status() {
  local server
  server="$(server_url)"
  [[ -n "$server" && -f "$PKI/admin.crt" ]] || return 1
  readyz "$server" && alive "$RUN/etcd.pid" && alive "$RUN/kube-controller-manager.pid"
}

with_lock() {
  mkdir -p "$TESTENV"
  exec 9>"$TESTENV/.lock"
  flock 9
  "$@"
}

# Every process of the environment runs (it may still be busy: see start).
processes_alive() {
  alive "$RUN/etcd.pid" && alive "$RUN/kube-apiserver.pid" && alive "$RUN/kube-controller-manager.pid"
}

start() {
  local tool
  for tool in openssl curl flock setsid; do
    command -v "$tool" >/dev/null || die "$tool is not installed (the environment's PKI and health checks need it; Debian: apt-get install openssl curl util-linux)"
  done
  if status; then
    log "reusing the running environment at $(server_url)"
  elif [[ -n "$(server_url)" ]] && alive "$RUN/etcd.pid" && alive "$RUN/kube-apiserver.pid" \
    && ! alive "$RUN/kube-controller-manager.pid" && readyz "$(server_url)"; then
    # Only the controller manager is gone: start it again, keeping the cluster's state.
    log "kube-controller-manager is not running (log: $RUN/kube-controller-manager.log): starting it again"
    start_controller_manager "$(server_url)"
  elif [[ -n "$(server_url)" ]] && processes_alive; then
    # Running but not answering (a loaded API server, e.g. under a scale test that another
    # test binary runs): wait for it rather than restart it under the other tests' feet.
    log "the environment at $(server_url) runs but is not ready: waiting up to ${READY_TIMEOUT} s"
    wait_for "kube-apiserver (running environment)" "$RUN/kube-apiserver.pid" readyz "$(server_url)"
    log "reusing the running environment at $(server_url)"
  else
    [[ ! -d "$RUN" ]] || { log "the environment in $RUN is not healthy: restarting it"; stop_all; }
    # A free port can be taken between choosing it and binding it: then once more. (A
    # subshell, so that a failed start's EXIT trap runs; errexit stays on inside it.)
    local rc
    set +e
    (set -e; start_fresh)
    rc=$?
    if ((rc != 0)) && grep -qs "address already in use" "$RUN"/*.log; then
      log "a port was taken meanwhile: starting once more"
      (set -e; start_fresh)
      rc=$?
    fi
    set -e
    ((rc == 0)) || exit "$rc"
  fi
  echo "$RUN/admin.kubeconfig"
}

# stop_pid PIDFILE BINARY: SIGTERM, up to 10 s, then SIGKILL; only if the pid still runs BINARY.
stop_pid() {
  local pidfile="$1" binary="$2" pid i
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$binary "; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

stop_all() {
  local d
  stop_pid "$RUN/kube-controller-manager.pid" "$BIN/kube-controller-manager"
  for d in "$RUN"/apiservers/*/; do
    [[ -d "$d" ]] && stop_pid "$d/apiserver.pid" "$BIN/kube-apiserver"
  done
  stop_pid "$RUN/kube-apiserver.pid" "$BIN/kube-apiserver"
  stop_pid "$RUN/etcd.pid" "$BIN/etcd"
  rm -f "$RUN/env"
}

stop() {
  if [[ -d "$RUN" ]]; then
    stop_all
    log "stopped (logs stay in $RUN)"
  else
    log "nothing to stop in $TESTENV"
  fi
}

print_env() {
  [[ -f "$RUN/env" ]] || die "no environment in $RUN: run scripts/kube-testenv.sh start"
  sed 's/^\([A-Z_]*\)=\(.*\)$/export \1='"'"'\2'"'"'/' "$RUN/env"
}

# apiserver NAME FLAGS...: a second kube-apiserver on the environment's etcd, with the
# same PKI and audit policy, its own port, log and audit log, and FLAGS appended (so they
# win over the defaults). Started once per NAME; a running one is reused.
extra_apiserver() {
  local name="${1:-}"
  [[ "$name" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "apiserver: NAME must be lowercase letters, digits and dashes"
  shift
  status || die "the environment in $RUN is not running: run scripts/kube-testenv.sh start"
  local dir="$RUN/apiservers/$name"
  if [[ -f "$dir/url" ]] && alive "$dir/apiserver.pid" && readyz "$(cat "$dir/url")"; then
    [[ "$(cat "$dir/flags")" == "$*" ]] \
      || die "apiserver '$name' runs with flags '$(cat "$dir/flags")', not '$*': use another NAME"
    echo "$(cat "$dir/url") $dir/admin.kubeconfig"
    return 0
  fi
  [[ ! -f "$dir/apiserver.pid" ]] || stop_pid "$dir/apiserver.pid" "$BIN/kube-apiserver"
  mkdir -p "$dir"
  ETCD_URL="$(sed -n 's/^AO_KUBE_ETCD=//p' "$RUN/env")"
  local port server
  port="$(free_port)"
  server="https://127.0.0.1:$port"
  log "kube-apiserver '$name' on $server with: $*"
  # kube-apiserver's identity (its Lease in kube-system) is a hash of the host name, so two
  # on one host would fight over one Lease: this one gets a host name of its own (a UTS
  # namespace; root only, as in CI).
  local uts=()
  if unshare --uts true 2>/dev/null; then
    # shellcheck disable=SC2016 # expanded by that sh
    uts=(unshare --uts sh -c 'echo "$0" >/proc/sys/kernel/hostname && exec "$@"' "testenv-$name")
  else
    log "warning: not root, so apiserver '$name' shares the main API server's identity Lease"
  fi
  # shellcheck disable=SC2046 # the flags are words without spaces
  setsid "${uts[@]}" "$BIN/kube-apiserver" $(apiserver_flags "$port" "$dir/audit.log") "$@" \
    </dev/null >>"$dir/apiserver.log" 2>&1 9>&- &
  echo $! >"$dir/apiserver.pid"
  wait_for "kube-apiserver '$name'" "$dir/apiserver.pid" readyz "$server"
  kubeconfig "$dir/admin.kubeconfig" "$server" admin
  echo "$*" >"$dir/flags"
  echo "$server" >"$dir/url"
  echo "$server $dir/admin.kubeconfig"
}

case "${1:-}" in
  build) build ;;
  start) with_lock start ;;
  status) status ;;
  stop) with_lock stop ;;
  env) print_env ;;
  apiserver) shift; with_lock extra_apiserver "$@" ;;
  *) echo "usage: $0 build|start|status|stop|env|apiserver NAME [FLAGS...]" >&2; exit 2 ;;
esac
