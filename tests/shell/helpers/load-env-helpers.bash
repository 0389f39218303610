# Helpers for load-env.bats. Loaded with `load helpers/load-env-helpers`.
# shellcheck shell=bash

REAL_REPO="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)"

# Tricky values: spaces, both quote kinds, `$`, backticks, backslashes,
# globs, leading dash, newlines and trailing newlines.
# shellcheck disable=SC2016
TRICKY_ANTHROPIC=$'sk-ant-api03 "double" \'single\' $HOME ${PATH} `id` $(id) \\back\\slash\\ \\n *? [a] -x\nsecond line\n'
# shellcheck disable=SC2016,SC1003
TRICKY_GITHUB='ghp_$(touch /tmp/pwned)_'"'"';echo pwned;'"'"'\'
# shellcheck disable=SC2016
TRICKY_KUBECONFIG=$'apiVersion: v1\nkind: Config\nclusters:\n- name: "k3s $dollar"\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: QUJD\\\\n\nusers:\n- name: admin\n  user:\n    token: kube-s3cret-\'tok\' "x"\n\n'

# setup_fake_repo: a throw-away copy of the repo layout that load-env.sh needs
# (scripts/load-env.sh + iac/Pulumi*.yaml), a fake pulumi on PATH, and a temp
# HOME/XDG_CONFIG_HOME outside it.
setup_fake_repo() {
    FAKE_REPO="$BATS_TEST_TMPDIR/repo"
    mkdir -p "$FAKE_REPO/scripts" "$FAKE_REPO/iac/sub" "$FAKE_REPO/docs"
    cp "$REAL_REPO/scripts/load-env.sh" "$FAKE_REPO/scripts/load-env.sh"
    cp "$REAL_REPO/iac/Pulumi.yaml" "$FAKE_REPO/iac/Pulumi.yaml"
    printf 'config:\n  agent-orchestrator:image: example/orchestrator:dev\n' >"$FAKE_REPO/iac/Pulumi.local.yaml"
    printf 'config:\n  agent-orchestrator:image: example/orchestrator:v1\n' >"$FAKE_REPO/iac/Pulumi.prod.yaml"
    SCRIPT="$FAKE_REPO/scripts/load-env.sh"

    FAKE_BIN="$BATS_TEST_TMPDIR/bin"
    mkdir -p "$FAKE_BIN"
    cat >"$FAKE_BIN/pulumi" <<'EOF'
#!/usr/bin/env bash
# Fake pulumi CLI: logs how it was called, then plays $FAKE_PULUMI_MODE.
{
    printf 'cwd=%s\n' "$PWD"
    printf 'args=%s\n' "$*"
    printf 'passphrase_env=%s\n' "${PULUMI_CONFIG_PASSPHRASE+set}${PULUMI_CONFIG_PASSPHRASE_FILE+file}"
} >>"$FAKE_PULUMI_LOG"
case "${FAKE_PULUMI_MODE:-ok}" in
    ok) cat "$FAKE_PULUMI_JSON" ;;
    wrongpass)
        echo 'error: getting secrets manager: passphrase must be set with PULUMI_CONFIG_PASSPHRASE: incorrect passphrase' >&2
        echo 'SECOND-LINE-NOT-SHOWN' >&2
        exit 255
        ;;
    nostack)
        echo "error: no stack named '$3' found" >&2
        exit 255
        ;;
    garbage) echo 'this is not json' ;;
    array) echo '[1,2,3]' ;;
    silentfail) exit 1 ;;
    *) echo "fake pulumi: bad mode $FAKE_PULUMI_MODE" >&2; exit 99 ;;
esac
EOF
    chmod +x "$FAKE_BIN/pulumi"

    export FAKE_PULUMI_LOG="$BATS_TEST_TMPDIR/pulumi.log"
    export FAKE_PULUMI_JSON="$BATS_TEST_TMPDIR/config.json"
    export FAKE_PULUMI_MODE=ok
    : >"$FAKE_PULUMI_LOG"
    write_config_json "$TRICKY_ANTHROPIC" "$TRICKY_GITHUB" "$TRICKY_KUBECONFIG"

    export HOME="$BATS_TEST_TMPDIR/home"
    export XDG_CONFIG_HOME="$BATS_TEST_TMPDIR/xdg"
    mkdir -p "$HOME"
    export PATH="$FAKE_BIN:$PATH"
    unset PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE ANTHROPIC_API_KEY GITHUB_TOKEN KUBECONFIG
}

# write_config_json ANTHROPIC GITHUB KUBECONFIG: the JSON that
# `pulumi config --show-secrets --json` prints. An argument of "-" omits the key.
write_config_json() {
    jq -n --arg a "$1" --arg g "$2" --arg k "$3" '
        {"agent-orchestrator:image": {"value": "example/orchestrator:dev", "secret": false}}
        + (if $a == "-" then {} else {"agent-orchestrator:anthropicApiKey": {"value": $a, "secret": true}} end)
        + (if $g == "-" then {} else {"agent-orchestrator:githubToken": {"value": $g, "secret": true}} end)
        + (if $k == "-" then {} else {"agent-orchestrator:kubeconfig": {"value": $k, "secret": true}} end)
    ' >"$FAKE_PULUMI_JSON"
}

add_encryptionsalt() { # stack
    printf 'encryptionsalt: v1:c2FsdA==:v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n' >>"$FAKE_REPO/iac/Pulumi.$1.yaml"
}

# assert_no_secret_in FILE...: none of the secret values (nor a distinctive
# fragment of them) appears in the given files.
assert_no_secret_in() {
    local f frag
    for f in "$@"; do
        # shellcheck disable=SC2016
        for frag in 'sk-ant-api03' 'ghp_$(touch' 'kube-s3cret' 'second line' 'QUJD'; do
            if grep -qF -- "$frag" "$f"; then
                echo "secret fragment '$frag' found in $f:" >&2
                cat "$f" >&2
                return 1
            fi
        done
    done
}

# state_check SETUP_CMDS SOURCE_ARGS...: in a clean bash (no rc files), runs
# SETUP_CMDS, snapshots the shell state, sources $SCRIPT with SOURCE_ARGS,
# snapshots again. Writes the rc to $BATS_TEST_TMPDIR/rc and the diff of the
# two snapshots to $BATS_TEST_TMPDIR/state.diff (empty = unchanged); the
# script's stdout/stderr go to $BATS_TEST_TMPDIR/out and .../err.
state_check() {
    local setup="$1"
    shift
    local d="$BATS_TEST_TMPDIR"
    # shellcheck disable=SC2016
    env -u BASH_ENV bash --norc --noprofile -c '
        snapshot() {
            set -o
            shopt -p
            umask
            pwd
            trap -p
            declare -F
            alias
            declare -p | grep -Ev "^declare -[-a-zA-Z]* (BASH_ARGC|BASH_ARGV|BASH_LINENO|BASH_SOURCE|BASH_COMMAND|BASH_SUBSHELL|FUNCNAME|LINENO|RANDOM|SRANDOM|SECONDS|EPOCHSECONDS|EPOCHREALTIME|PIPESTATUS|_)="
        }
        d=$1 script=$2 setup=$3
        shift 3
        srcargs=("$@")
        set --
        eval "$setup"
        # `>|`: SETUP may `set -o noclobber`, and these files exist from an earlier call.
        snapshot >|"$d/before" 2>|"$d/snapshot.err"
        source "$script" "${srcargs[@]}" >|"$d/out" 2>|"$d/err" && echo 0 >|"$d/rc" || echo "$?" >|"$d/rc"
        snapshot >|"$d/after" 2>>"$d/snapshot.err"
    ' state-check "$d" "$SCRIPT" "$setup" "$@"
    diff "$d/before" "$d/after" >"$d/state.diff" || true
}

state_check_unchanged() {
    if [[ -s "$BATS_TEST_TMPDIR/state.diff" ]]; then
        echo "shell state changed:" >&2
        cat "$BATS_TEST_TMPDIR/state.diff" >&2
        return 1
    fi
}

# not CMD...: succeeds iff CMD fails (a bare `! cmd` does not fail a bats test).
not() {
    if "$@"; then
        return 1
    fi
}
