#!/usr/bin/env bats
# The HA overlay (overlays/ha: 3 replicas on PostgreSQL) as kustomize renders it, next to the
# base it patches (deploy/): what the overlay adds, and that it changes nothing else. The
# objects themselves are parsed strictly into their Kubernetes types by ao-runtime-kube's
# tests/deploy_manifests, and applied to a real API server by agent-orchestrator's
# tests/kube_deploy.
#
# Needs kubectl (kustomize) and yq (Debian's, a jq wrapper); scripts/test-ops.sh installs both.

bats_require_minimum_version 1.5.0

setup_file() {
    local root
    root="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)"
    command -v kubectl >/dev/null || { echo "kubectl is not installed" >&2; return 1; }
    command -v yq >/dev/null || { echo "yq is not installed" >&2; return 1; }
    # One JSON array of all objects per render.
    kubectl kustomize "$root/deploy" | yq -s . >"$BATS_FILE_TMPDIR/base.json"
    kubectl kustomize "$root/overlays/ha" | yq -s . >"$BATS_FILE_TMPDIR/ha.json"
}

# q RENDER FILTER: runs the jq FILTER on the objects of RENDER (base or ha), compact output.
q() {
    jq -ce "$2" "$BATS_FILE_TMPDIR/$1.json"
}

DEPLOYMENT='.[] | select(.kind == "Deployment" and .metadata.name == "agent-orchestrator")'
CONTAINER="$DEPLOYMENT"' | .spec.template.spec.containers[] | select(.name == "agent-orchestrator")'

@test "the base still renders a single SQLite replica: 1 replica, Recreate, no PDB, no database URL" {
    [ "$(q base "[$DEPLOYMENT] | length")" = 1 ]
    [ "$(q base "$DEPLOYMENT | .spec.replicas")" = 1 ]
    [ "$(q base "$DEPLOYMENT | .spec.strategy.type")" = '"Recreate"' ]
    [ "$(q base 'map(select(.kind == "PodDisruptionBudget")) | length')" = 0 ]
    [ "$(q base "[$CONTAINER | .env[] | select(.name == \"AO_DATABASE_URL\")] | length")" = 0 ]
}

@test "the overlay is the base plus a PDB, with only the Deployment patched" {
    # Every object but the Deployment is the base's, unchanged; the PDB is the one addition.
    local others='map(select(.kind != "Deployment" and .kind != "PodDisruptionBudget")) | sort_by(.kind, .metadata.namespace, .metadata.name)'
    [ "$(q base "$others")" = "$(q ha "$others")" ]
    [ "$(q base 'length')" -ge 9 ]
    [ "$(q ha 'length')" = "$(($(q base 'length') + 1))" ]
    # The Deployment without what the overlay sets is the base's.
    local strip='del(.spec.replicas, .spec.strategy, .spec.template.spec.affinity)
        | .spec.template.spec.containers |= map(.env |= map(select(.name != "AO_DATABASE_URL" and .name != "AO_LEADER_LEASE_SECONDS")))'
    [ "$(q base "$DEPLOYMENT | $strip")" = "$(q ha "$DEPLOYMENT | $strip")" ]
}

@test "3 replicas, rolled one at a time with all 3 kept Ready (maxSurge 1, maxUnavailable 0)" {
    [ "$(q ha "$DEPLOYMENT | .spec.replicas")" = 3 ]
    [ "$(q ha "$DEPLOYMENT | .spec.strategy")" = '{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"type":"RollingUpdate"}' ]
}

@test "a PodDisruptionBudget (maxUnavailable 1) selects the orchestrator's pods, and only them" {
    [ "$(q ha 'map(select(.kind == "PodDisruptionBudget")) | length')" = 1 ]
    local pdb='.[] | select(.kind == "PodDisruptionBudget")'
    [ "$(q ha "$pdb | .apiVersion")" = '"policy/v1"' ]
    [ "$(q ha "$pdb | .metadata.namespace")" = "$(q ha "$DEPLOYMENT | .metadata.namespace")" ]
    [ "$(q ha "$pdb | .spec.maxUnavailable")" = 1 ]
    [ "$(q ha "$pdb | .spec | has(\"minAvailable\")")" = false ]
    # Its selector is the Deployment's own, and matches the pod template's labels.
    [ "$(q ha "$pdb | .spec.selector")" = "$(q ha "$DEPLOYMENT | .spec.selector")" ]
    local labels
    labels="$(q ha "$DEPLOYMENT | .spec.template.metadata.labels")"
    [ "$(q ha "$pdb | .spec.selector.matchLabels | to_entries | all(.value == ($labels)[.key])")" = true ]
    # No other Deployment or pod template in the render carries those labels.
    [ "$(q ha "[.[] | select(.spec.template.metadata.labels? // {} | contains($(q ha "$pdb | .spec.selector.matchLabels")))] | length")" = 1 ]
}

@test "preferred pod anti-affinity by hostname spreads the replicas and still schedules on one node" {
    local anti="$DEPLOYMENT"' | .spec.template.spec.affinity.podAntiAffinity'
    [ "$(q ha "$anti | has(\"requiredDuringSchedulingIgnoredDuringExecution\")")" = false ]
    [ "$(q ha "[$anti | .preferredDuringSchedulingIgnoredDuringExecution[]] | length")" = 1 ]
    local term="$anti"' | .preferredDuringSchedulingIgnoredDuringExecution[0]'
    [ "$(q ha "$term | .weight")" = 100 ]
    [ "$(q ha "$term | .podAffinityTerm.topologyKey")" = '"kubernetes.io/hostname"' ]
    [ "$(q ha "$term | .podAffinityTerm.labelSelector")" = "$(q ha "$DEPLOYMENT | .spec.selector")" ]
}

@test "AO_DATABASE_URL comes from the Secret orchestrator-database (key url, not optional), never a literal" {
    local url="$CONTAINER"' | .env[] | select(.name == "AO_DATABASE_URL")'
    [ "$(q ha "[$url] | length")" = 1 ]
    [ "$(q ha "$url | has(\"value\")")" = false ]
    [ "$(q ha "$url | .valueFrom")" = '{"secretKeyRef":{"key":"url","name":"orchestrator-database","optional":false}}' ]
    # The Secret is created by hand (README "HA with PostgreSQL"), never rendered with a value; and no
    # PostgreSQL URL appears anywhere in the render.
    [ "$(q ha 'map(select(.kind == "Secret")) | length')" = 0 ]
    run ! grep -Eiq 'postgres(ql)?://' "$BATS_FILE_TMPDIR/ha.json"
}

@test "the leader lease is 10 s (AO_LEADER_LEASE_SECONDS), and every replica is Ready on /readyz" {
    [ "$(q ha "$CONTAINER | .env[] | select(.name == \"AO_LEADER_LEASE_SECONDS\") | .value")" = '"10"' ]
    [ "$(q ha "$CONTAINER | .readinessProbe.httpGet.path")" = '"/readyz"' ]
    [ "$(q ha "$CONTAINER | .readinessProbe")" = "$(q base "$CONTAINER | .readinessProbe")" ]
}

@test "no RBAC for Leases: the scheduler lease is a PostgreSQL row, and the Role is the base's" {
    [ "$(q ha 'map(select(.kind == "ClusterRole" or .kind == "ClusterRoleBinding")) | length')" = 0 ]
    [ "$(q ha '[.[] | select(.kind == "Role") | .rules[] | select((.apiGroups | index("coordination.k8s.io")) or (.resources | index("leases")) or (.resources | index("*")))] | length')" = 0 ]
    [ "$(q ha 'map(select(.kind == "Role"))')" = "$(q base 'map(select(.kind == "Role"))')" ]
}

@test "the Service reaches every replica; no replica keeps state on a volume of its own" {
    local svc='.[] | select(.kind == "Service" and .metadata.name == "agent-orchestrator")'
    [ "$(q ha "$svc | .spec.selector")" = "$(q ha "$DEPLOYMENT | .spec.selector.matchLabels")" ]
    [ "$(q ha "$svc | .spec | has(\"sessionAffinity\") or has(\"publishNotReadyAddresses\")")" = false ]
    # /data is an emptyDir per pod (the state is in PostgreSQL); no PersistentVolumeClaim.
    [ "$(q ha '[.[] | select(.kind == "PersistentVolumeClaim")] | length')" = 0 ]
    [ "$(q ha "[$DEPLOYMENT | .spec.template.spec.volumes[] | select(has(\"persistentVolumeClaim\") or has(\"hostPath\"))] | length")" = 0 ]
    [ "$(q ha "$DEPLOYMENT | .spec.template.spec.volumes[] | select(.name == \"data\") | .emptyDir")" = '{}' ]
}
