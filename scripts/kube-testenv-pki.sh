# shellcheck shell=bash
# Sourced by scripts/kube-testenv.sh: the environment's PKI (a CA, serving and client
# certificates, the service-account signing key) made with openssl into $PKI, and kubeconfigs
# that authenticate with those certificates. Needs PKI and log from the sourcing script.

# openssl certificate signed by the CA: sign NAME SUBJECT [SAN] [EKU]
sign() {
  local name="$1" subj="$2" san="${3:-}" eku="${4:-clientAuth}"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -z "$san" ]] || echo "subjectAltName=$san"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
  (umask 077 && mkdir -p "$PKI")
  chmod 0700 "$PKI"
  local old_umask
  old_umask="$(umask)"
  umask 077
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=ao-kube-testenv-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1" \
    serverAuth
  sign admin "/O=system:masters/CN=admin"
  # The process node's client identity: "ao-kube-node" in the audit log.
  sign node-client "/O=system:masters/CN=ao-kube-node"
  sign kube-controller-manager "/CN=system:kube-controller-manager"
  # kube-apiserver -> kubelet (the process node's log endpoint).
  sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  # The process node's serving certificate (its log endpoint on 127.0.0.1).
  sign node "/CN=ao-kube-node" "IP:127.0.0.1,DNS:localhost" serverAuth
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  rm -f "$PKI/ca.srl"
  umask "$old_umask"
  chmod 0600 "$PKI"/*.key
  # Certificates are public; the keys stay 0600 in a 0700 folder.
  chmod 0644 "$PKI"/*.crt "$PKI/sa.pub"
}

b64() { base64 -w0 <"$1"; }

# kubeconfig FILE SERVER CERT_NAME: a kubeconfig authenticating with pki/CERT_NAME.crt.
kubeconfig() {
  local file="$1" server="$2" cert="$3"
  (
    umask 077
    cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: ao-kube-testenv
  cluster:
    server: $server
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(b64 "$PKI/$cert.crt")
    client-key-data: $(b64 "$PKI/$cert.key")
contexts:
- name: ao-kube-testenv
  context:
    cluster: ao-kube-testenv
    user: $cert
current-context: ao-kube-testenv
KUBECONFIG
  )
}
