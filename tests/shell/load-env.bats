#!/usr/bin/env bats
# Tests for scripts/load-env.sh with a fake `pulumi` on PATH.
# Run: bats tests/shell

bats_require_minimum_version 1.5.0

load helpers/load-env-helpers

setup() {
    setup_fake_repo
    KFILE="$XDG_CONFIG_HOME/agent-orchestrator/kubeconfig-local"
}

# Sources the script in the test's own shell (so exports are visible here),
# capturing rc, stdout and stderr.
source_script() {
    LE_RC=0
    # shellcheck disable=SC1090
    source "$SCRIPT" "$@" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" || LE_RC=$?
}

show() {
    echo "rc=$LE_RC"
    echo "--- stdout"
    cat "$BATS_TEST_TMPDIR/out"
    echo "--- stderr"
    cat "$BATS_TEST_TMPDIR/err"
}

# ---------------------------------------------------------------- executed --

@test "executed directly: prints usage to stderr, exits non-zero, does nothing" {
    run --separate-stderr bash "$SCRIPT"
    [ "$status" -ne 0 ]
    [ -z "$output" ]
    [[ "$stderr" == *"must be sourced"* ]]
    [[ "$stderr" == *"source scripts/load-env.sh [stack]"* ]]
    [ ! -s "$FAKE_PULUMI_LOG" ]
    [ ! -e "$XDG_CONFIG_HOME/agent-orchestrator" ]
}

@test "executed directly via its shebang (the real script) also fails with usage" {
    [ -x "$REAL_REPO/scripts/load-env.sh" ]
    run --separate-stderr "$REAL_REPO/scripts/load-env.sh" local
    [ "$status" -ne 0 ]
    [[ "$stderr" == *"must be sourced"* ]]
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

# ----------------------------------------------------------------- success --

@test "success: exports tricky values exactly and reports only variable names" {
    source_script
    show
    [ "$LE_RC" -eq 0 ]
    [[ "$ANTHROPIC_API_KEY" == "$TRICKY_ANTHROPIC" ]]
    [[ "$GITHUB_TOKEN" == "$TRICKY_GITHUB" ]]
    [[ "$KUBECONFIG" == "$KFILE" ]]
    # exported, byte-exact, as seen by a child process
    bash -c '[[ "$ANTHROPIC_API_KEY" == "$1" && "$GITHUB_TOKEN" == "$2" && "$KUBECONFIG" == "$3" ]]' \
        _ "$TRICKY_ANTHROPIC" "$TRICKY_GITHUB" "$KFILE"
    grep -q 'ANTHROPIC_API_KEY GITHUB_TOKEN KUBECONFIG' "$BATS_TEST_TMPDIR/err"
    [ ! -s "$BATS_TEST_TMPDIR/out" ]
    assert_no_secret_in "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
    [ ! -e /tmp/pwned ]
}

@test "success: kubeconfig file is byte-exact, mode 0600, dir 0700, outside the repo" {
    source_script
    show
    [ "$LE_RC" -eq 0 ]
    printf '%s' "$TRICKY_KUBECONFIG" >"$BATS_TEST_TMPDIR/expected-kubeconfig"
    cmp "$KFILE" "$BATS_TEST_TMPDIR/expected-kubeconfig"
    [ "$(stat -c %a "$KFILE")" = 600 ]
    [ "$(stat -c %a "$XDG_CONFIG_HOME/agent-orchestrator")" = 700 ]
    local real
    real="$(realpath "$KFILE")"
    [[ "$real" != "$FAKE_REPO"/* ]]
    [[ "$real" != "$REAL_REPO"/* ]]
    # no leftover temp files next to it
    [ "$(find "$XDG_CONFIG_HOME/agent-orchestrator" -type f | wc -l)" -eq 1 ]
}

@test "success: no secret is written anywhere in the repository tree" {
    source_script
    [ "$LE_RC" -eq 0 ]
    run grep -rlF -e 'kube-s3cret' -e 'sk-ant-api03' -e 'ghp_$(touch' "$FAKE_REPO"
    [ "$status" -eq 1 ]
}

@test "runs 'pulumi config --stack local --show-secrets --json' in iac/, from any cwd" {
    cd /
    source_script
    show
    [ "$LE_RC" -eq 0 ]
    grep -qxF "cwd=$FAKE_REPO/iac" "$FAKE_PULUMI_LOG"
    grep -qxF "args=config --stack local --show-secrets --json" "$FAKE_PULUMI_LOG"
    [ "$PWD" = / ]
}

@test "works when sourced by a relative path from a subdirectory of the repo" {
    cd "$FAKE_REPO/docs"
    LE_RC=0
    # shellcheck disable=SC1091
    source ../scripts/load-env.sh >/dev/null 2>&1 || LE_RC=$?
    [ "$LE_RC" -eq 0 ]
    [ "$PWD" = "$FAKE_REPO/docs" ]
    grep -qxF "cwd=$FAKE_REPO/iac" "$FAKE_PULUMI_LOG"
}

@test "stack argument selects the stack and the kubeconfig file name" {
    source_script prod
    show
    [ "$LE_RC" -eq 0 ]
    grep -qxF "args=config --stack prod --show-secrets --json" "$FAKE_PULUMI_LOG"
    [ "$KUBECONFIG" = "$XDG_CONFIG_HOME/agent-orchestrator/kubeconfig-prod" ]
    [ -f "$KUBECONFIG" ]
    [ ! -e "$KFILE" ]
}

@test "without XDG_CONFIG_HOME the kubeconfig goes to \$HOME/.config" {
    unset XDG_CONFIG_HOME
    source_script
    show
    [ "$LE_RC" -eq 0 ]
    [ "$KUBECONFIG" = "$HOME/.config/agent-orchestrator/kubeconfig-local" ]
    [ "$(stat -c %a "$KUBECONFIG")" = 600 ]
}

@test "an existing world-readable kubeconfig file is replaced with a 0600 one" {
    mkdir -p "$(dirname "$KFILE")"
    echo old >"$KFILE"
    chmod 644 "$KFILE"
    source_script
    [ "$LE_RC" -eq 0 ]
    [ "$(stat -c %a "$KFILE")" = 600 ]
    [ "$(cat "$KFILE")" != old ]
}

@test "the caller's umask, options, cwd and positional parameters are untouched on success" {
    state_check 'set -euo pipefail; umask 022; set -- a "b c"' local
    cat "$BATS_TEST_TMPDIR/err"
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 0 ]
    # the only differences: the three exported variables
    run grep -E '^[<>]' "$BATS_TEST_TMPDIR/state.diff"
    [ "${#lines[@]}" -eq 3 ]
    [[ "${lines[0]}" == "> declare -x ANTHROPIC_API_KEY="* ]]
    [[ "${lines[1]}" == "> declare -x GITHUB_TOKEN="* ]]
    [[ "${lines[2]}" == "> declare -x KUBECONFIG="* ]]
}

@test "caller's positional parameters survive 'source load-env.sh prod'" {
    set -- one "two three"
    source_script prod
    [ "$LE_RC" -eq 0 ]
    [ "$#" -eq 2 ] && [ "$1" = one ] && [ "$2" = "two three" ]
}

@test "the caller's set -x never traces secret values" {
    state_check 'set -x' local
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 0 ]
    grep -q 'ANTHROPIC_API_KEY GITHUB_TOKEN KUBECONFIG' "$BATS_TEST_TMPDIR/err"
    assert_no_secret_in "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
    # xtrace is still on afterwards
    not grep -q '^xtrace[[:space:]]*on' "$BATS_TEST_TMPDIR/state.diff"
    grep -q '^xtrace[[:space:]]*on' "$BATS_TEST_TMPDIR/after"
}

@test "--help prints usage and changes nothing" {
    state_check '' --help
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 0 ]
    grep -q 'usage' "$BATS_TEST_TMPDIR/err"
    state_check_unchanged
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "with the real repo layout (iac/Pulumi.local.yaml) and a fake pulumi" {
    SCRIPT="$REAL_REPO/scripts/load-env.sh"
    cd "$BATS_TEST_TMPDIR"
    source_script local
    show
    [ "$LE_RC" -eq 0 ]
    grep -qxF "cwd=$REAL_REPO/iac" "$FAKE_PULUMI_LOG"
    [[ "$GITHUB_TOKEN" == "$TRICKY_GITHUB" ]]
    [ "$KUBECONFIG" = "$KFILE" ]
}

# ------------------------------------------------------------------ errors --

# expect_failure RC MESSAGE SETUP [ARGS...]: sourcing fails with RC, prints
# MESSAGE on stderr, nothing on stdout, no secret anywhere, leaves the shell
# state identical and writes no kubeconfig.
expect_failure() {
    local want_rc="$1" msg="$2" setup="$3"
    shift 3
    state_check "$setup" "$@"
    echo "rc=$(cat "$BATS_TEST_TMPDIR/rc")"
    echo "--- stderr"
    cat "$BATS_TEST_TMPDIR/err"
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq "$want_rc" ]
    grep -qF -- "$msg" "$BATS_TEST_TMPDIR/err"
    [ ! -s "$BATS_TEST_TMPDIR/out" ]
    assert_no_secret_in "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
    state_check_unchanged
    [ ! -e "$KFILE" ]
    # and the same again under the caller's set -euo pipefail and set -x
    state_check "set -euo pipefail; $setup" "$@"
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq "$want_rc" ]
    state_check_unchanged
    state_check "set -x; $setup" "$@"
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq "$want_rc" ]
    state_check_unchanged
}

@test "error: pulumi not on PATH (rc 3)" {
    rm "$FAKE_BIN/pulumi"
    expect_failure 3 "pulumi not found" ''
}

@test "error: jq not on PATH (rc 4)" {
    local nojq="$BATS_TEST_TMPDIR/nojq"
    mkdir -p "$nojq"
    local t
    for t in bash env dirname grep mktemp printenv mkdir chmod mv rm cat diff; do
        ln -s "$(command -v "$t")" "$nojq/$t"
    done
    ln -s "$FAKE_BIN/pulumi" "$nojq/pulumi"
    expect_failure 4 "jq not found" "PATH='$nojq'"
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "error: unknown stack, no stack file (rc 5, pulumi not run)" {
    expect_failure 5 "unknown stack 'staging'" '' staging
    grep -q 'known stacks: local prod' "$BATS_TEST_TMPDIR/err"
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "error: unknown stack reported by pulumi (rc 5)" {
    expect_failure 5 "unknown stack 'local'" 'export FAKE_PULUMI_MODE=nostack'
    grep -qF "no stack named 'local' found" "$BATS_TEST_TMPDIR/err"
}

@test "error: invalid stack name (rc 5)" {
    expect_failure 5 "invalid stack name" '' '../etc'
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "error: encrypted stack without PULUMI_CONFIG_PASSPHRASE(_FILE) (rc 6, pulumi not run)" {
    add_encryptionsalt local
    expect_failure 6 "set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE" ''
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "error: PULUMI_CONFIG_PASSPHRASE set but not exported (rc 6)" {
    add_encryptionsalt local
    expect_failure 6 "not exported" 'PULUMI_CONFIG_PASSPHRASE=hunter2'
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "encrypted stack with exported PULUMI_CONFIG_PASSPHRASE works" {
    add_encryptionsalt local
    export PULUMI_CONFIG_PASSPHRASE='pass phrase'
    source_script
    show
    [ "$LE_RC" -eq 0 ]
    grep -qx 'passphrase_env=set' "$FAKE_PULUMI_LOG"
    [[ "$ANTHROPIC_API_KEY" == "$TRICKY_ANTHROPIC" ]]
}

@test "encrypted stack with PULUMI_CONFIG_PASSPHRASE_FILE works" {
    add_encryptionsalt local
    export PULUMI_CONFIG_PASSPHRASE_FILE="$BATS_TEST_TMPDIR/passfile"
    source_script
    [ "$LE_RC" -eq 0 ]
    grep -qx 'passphrase_env=file' "$FAKE_PULUMI_LOG"
}

@test "unencrypted stack does not need a passphrase" {
    source_script
    [ "$LE_RC" -eq 0 ]
    grep -qx 'passphrase_env=' "$FAKE_PULUMI_LOG"
}

@test "error: pulumi fails, e.g. wrong passphrase (rc 7, shows pulumi's first stderr line)" {
    add_encryptionsalt local
    expect_failure 7 "incorrect passphrase" 'export PULUMI_CONFIG_PASSPHRASE=wrong FAKE_PULUMI_MODE=wrongpass'
    grep -qF "failed (exit 255): error: getting secrets manager" "$BATS_TEST_TMPDIR/err"
    not grep -q 'SECOND-LINE-NOT-SHOWN' "$BATS_TEST_TMPDIR/err"
}

@test "error: pulumi fails silently (rc 7)" {
    expect_failure 7 "failed (exit 1): <no error output>" 'export FAKE_PULUMI_MODE=silentfail'
}

@test "error: pulumi prints something that is not a JSON object (rc 7)" {
    expect_failure 7 "did not print a JSON object" 'export FAKE_PULUMI_MODE=garbage'
    expect_failure 7 "did not print a JSON object" 'export FAKE_PULUMI_MODE=array'
}

@test "error: a required key is missing (rc 8, names it)" {
    write_config_json "$TRICKY_ANTHROPIC" - "$TRICKY_KUBECONFIG"
    expect_failure 8 "missing required secret config: agent-orchestrator:githubToken" ''
}

@test "error: several keys missing are all named (rc 8)" {
    write_config_json - "$TRICKY_GITHUB" -
    expect_failure 8 "missing required secret config: agent-orchestrator:anthropicApiKey agent-orchestrator:kubeconfig" ''
}

@test "error: an empty value counts as missing (rc 8)" {
    write_config_json "$TRICKY_ANTHROPIC" "$TRICKY_GITHUB" ""
    expect_failure 8 "agent-orchestrator:kubeconfig" ''
}

@test "error: refuses to write the kubeconfig inside the repository (rc 9)" {
    expect_failure 9 "refusing to write the kubeconfig inside the repository" "export XDG_CONFIG_HOME='$FAKE_REPO/.config'"
    [ ! -e "$FAKE_REPO/.config/agent-orchestrator/kubeconfig-local" ]
    run find "$FAKE_REPO/.config" -type f
    [ -z "$output" ]
}

@test "error: too many arguments (rc 2)" {
    expect_failure 2 "too many arguments" '' local prod
    [ ! -s "$FAKE_PULUMI_LOG" ]
}

@test "failure keeps previously exported values untouched" {
    export ANTHROPIC_API_KEY=previous-a GITHUB_TOKEN=previous-g KUBECONFIG=/previous/kubeconfig
    write_config_json "$TRICKY_ANTHROPIC" "$TRICKY_GITHUB" -
    source_script
    [ "$LE_RC" -eq 8 ]
    [ "$ANTHROPIC_API_KEY" = previous-a ]
    [ "$GITHUB_TOKEN" = previous-g ]
    [ "$KUBECONFIG" = /previous/kubeconfig ]
}

@test "the state harness itself detects a leaked variable (sanity check)" {
    cat >"$BATS_TEST_TMPDIR/leaky.sh" <<'EOF'
leaked=1
set -o pipefail
EOF
    SCRIPT="$BATS_TEST_TMPDIR/leaky.sh"
    state_check ''
    grep -q 'leaked' "$BATS_TEST_TMPDIR/state.diff"
    grep -q 'pipefail' "$BATS_TEST_TMPDIR/state.diff"
}

# ------------------------------------------------------------- noclobber --
# `set -o noclobber` (set -C) is a common .bashrc setting. The script writes
# into files that mktemp has just created; a plain `>` then fails.

@test "works when the caller has set -o noclobber, and leaves it on" {
    state_check 'set -o noclobber' local
    cat "$BATS_TEST_TMPDIR/err"
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 0 ]
    not grep -q 'failed' "$BATS_TEST_TMPDIR/err"
    run grep -E '^[<>]' "$BATS_TEST_TMPDIR/state.diff"
    [ "${#lines[@]}" -eq 3 ]
    [[ "${lines[0]}" == "> declare -x ANTHROPIC_API_KEY="* ]]
    grep -q '^noclobber[[:space:]]*on' "$BATS_TEST_TMPDIR/after"
    printf '%s' "$TRICKY_KUBECONFIG" >"$BATS_TEST_TMPDIR/expected-kubeconfig"
    cmp "$KFILE" "$BATS_TEST_TMPDIR/expected-kubeconfig"
}

@test "noclobber: an existing kubeconfig is still replaced" {
    mkdir -p "$(dirname "$KFILE")"
    echo old >"$KFILE"
    state_check 'set -C' local
    [ "$(cat "$BATS_TEST_TMPDIR/rc")" -eq 0 ]
    [ "$(cat "$KFILE")" != old ]
}

@test "noclobber: a genuine pulumi failure is still reported as pulumi's (rc 7)" {
    add_encryptionsalt local
    expect_failure 7 "failed (exit 255): error: getting secrets manager" \
        'set -C; export PULUMI_CONFIG_PASSPHRASE=wrong FAKE_PULUMI_MODE=wrongpass'
}

@test "error: no usable temporary directory is named as such, not blamed on pulumi (rc 11)" {
    expect_failure 11 "cannot create a temporary file in $BATS_TEST_TMPDIR/no-such-dir" \
        "export TMPDIR='$BATS_TEST_TMPDIR/no-such-dir'"
    not grep -q "pulumi" "$BATS_TEST_TMPDIR/err"
    [ ! -s "$FAKE_PULUMI_LOG" ]
}
