#!/usr/bin/env bash
# load-env.sh - load a Pulumi stack's secrets into the current shell.
#
# Usage (must be SOURCED, from any directory):
#
#     source scripts/load-env.sh [stack]      # stack defaults to "local"
#
# Runs `pulumi config --stack <stack> --show-secrets --json` in the repo's iac/
# directory and, only if everything succeeded:
#   * exports ANTHROPIC_API_KEY   <- agent-orchestrator:anthropicApiKey
#   * exports GITHUB_TOKEN        <- agent-orchestrator:githubToken
#   * writes agent-orchestrator:kubeconfig to
#       ${XDG_CONFIG_HOME:-$HOME/.config}/agent-orchestrator/kubeconfig-<stack>
#     (mode 0600, directory 0700, never inside the repository) and exports
#     KUBECONFIG pointing at it.
# Secret values are never printed; only the names of the variables set are
# reported (on stderr). Values round-trip byte for byte (spaces, quotes, `$`,
# backslashes, newlines, trailing newlines).
#
# On any error nothing in the calling shell changes (no variables, functions,
# options or traps are left behind) and it returns:
#   2  usage error (bad arguments, not bash, executed instead of sourced)
#   3  pulumi not found on PATH
#   4  jq not found on PATH
#   5  unknown stack (no iac/Pulumi.<stack>.yaml, or pulumi knows no such stack)
#   6  the stack is passphrase-encrypted and neither PULUMI_CONFIG_PASSPHRASE
#      nor PULUMI_CONFIG_PASSPHRASE_FILE is exported
#   7  pulumi failed (e.g. wrong passphrase; its first stderr line is shown)
#      or printed something that is not a JSON object
#   8  a required config key is missing or empty
#   9  the kubeconfig file could not be written (or would be inside the repo)
#  10  repository layout broken (no iac/Pulumi.yaml next to this script, or
#      iac/ cannot be entered)
#  11  no temporary file could be created or written (check TMPDIR)
#
# It works whatever options the caller's shell has set (`set -euo pipefail`,
# `set -x`, `set -o noclobber`) and leaves them as they were.

# --- executed instead of sourced: print usage, change nothing ----------------
if ! (return 0 2>/dev/null); then
    {
        echo "load-env.sh must be sourced, not executed:"
        echo "    source scripts/load-env.sh [stack]    # stack defaults to 'local'"
        echo "It exports ANTHROPIC_API_KEY, GITHUB_TOKEN and KUBECONFIG from the Pulumi stack config."
    } >&2
    exit 2
fi

if [ -z "${BASH_VERSION:-}" ]; then
    echo "load-env.sh: requires bash (source it from a bash shell)" >&2
    return 2
fi

# All work happens in this function: its variables are `local`, its shell
# options are restored on return (`local -`), the pulumi/jq work runs in a
# subshell, and the exports happen at the very end only once everything
# succeeded. The function is removed again below.
__ao_load_env_main() {
    local -
    set +x # never trace secret values, even if the caller has `set -x`
    local stack script_dir repo_root iac_dir out a g k

    case "$#:${1:-}" in
        1:-h | 1:--help)
            echo "usage: source scripts/load-env.sh [stack]   (default stack: local)" >&2
            return 0
            ;;
        0:* | 1:*) stack="${1:-local}" ;;
        *)
            echo "load-env: too many arguments; usage: source scripts/load-env.sh [stack]" >&2
            return 2
            ;;
    esac
    # (glob match, not =~, so the caller's BASH_REMATCH is left alone)
    if [[ "$stack" != [A-Za-z0-9]* || "$stack" == *[!A-Za-z0-9._-]* ]]; then
        echo "load-env: invalid stack name '$stack' (letters, digits, '.', '_', '-' only)" >&2
        return 5
    fi

    # Locate the repo from this file, whatever the caller's cwd.
    if ! script_dir="$(CDPATH='' builtin cd -- "$(command dirname -- "${BASH_SOURCE[0]}")" && builtin pwd -P)"; then
        echo "load-env: cannot locate the script directory" >&2
        return 10
    fi
    repo_root="${script_dir%/*}"
    iac_dir="$repo_root/iac"
    if [[ ! -f "$iac_dir/Pulumi.yaml" ]]; then
        echo "load-env: $iac_dir/Pulumi.yaml not found (repository layout broken?)" >&2
        return 10
    fi

    if ! command -v pulumi >/dev/null 2>&1; then
        echo "load-env: pulumi not found on PATH (install the Pulumi CLI, e.g. 'mise install pulumi')" >&2
        return 3
    fi
    if ! command -v jq >/dev/null 2>&1; then
        echo "load-env: jq not found on PATH (e.g. 'apt-get install jq' or 'mise install jq')" >&2
        return 4
    fi

    if [[ ! -f "$iac_dir/Pulumi.$stack.yaml" ]]; then
        local known f
        known=""
        for f in "$iac_dir"/Pulumi.*.yaml; do
            [[ -e "$f" ]] || continue
            f="${f##*/Pulumi.}"
            known="$known ${f%.yaml}"
        done
        echo "load-env: unknown stack '$stack': $iac_dir/Pulumi.$stack.yaml does not exist (known stacks:${known:- none})" >&2
        return 5
    fi

    if command grep -q '^encryptionsalt:' "$iac_dir/Pulumi.$stack.yaml" &&
        ! command printenv PULUMI_CONFIG_PASSPHRASE >/dev/null 2>&1 &&
        ! command printenv PULUMI_CONFIG_PASSPHRASE_FILE >/dev/null 2>&1; then
        if [[ -n "${PULUMI_CONFIG_PASSPHRASE+x}${PULUMI_CONFIG_PASSPHRASE_FILE+x}" ]]; then
            echo "load-env: stack '$stack' is passphrase-encrypted; PULUMI_CONFIG_PASSPHRASE(_FILE) is set but not exported (use 'export')" >&2
        else
            echo "load-env: stack '$stack' is passphrase-encrypted; set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE first" >&2
        fi
        return 6
    fi

    # The subshell does everything that can fail. On success it prints shell
    # assignments for the locals a, g and k (values quoted by jq's @sh).
    out="$(
        set +e +u +x
        set -o pipefail
        umask 077

        errf="$(command mktemp "${TMPDIR:-/tmp}/load-env.XXXXXX")" || {
            echo "load-env: cannot create a temporary file in ${TMPDIR:-/tmp} (set TMPDIR to a writable directory)" >&2
            exit 11
        }
        trap 'command rm -f -- "$errf"' EXIT

        # What the shell itself does around pulumi (enter iac/, write pulumi's
        # stderr to the temporary file) is checked first, so that its failure
        # is reported as what it is, never as pulumi's. `>|`, not `>`: mktemp
        # has created the file, and the caller may have `set -o noclobber`.
        if ! (CDPATH='' builtin cd -- "$iac_dir"); then
            echo "load-env: cannot enter $iac_dir" >&2
            exit 10
        fi
        if ! true >|"$errf"; then
            echo "load-env: cannot write the temporary file $errf" >&2
            exit 11
        fi
        json="$(
            CDPATH='' builtin cd -- "$iac_dir" &&
                PULUMI_SKIP_UPDATE_CHECK=true command pulumi config --stack "$stack" --show-secrets --json \
                    </dev/null 2>|"$errf"
        )"
        rc=$?
        if ((rc != 0)); then
            first="$(command grep -m1 -v '^[[:space:]]*$' "$errf")"
            if [[ "$first" == *"no stack named"* || "$first" == *"stack not found"* ]]; then
                echo "load-env: unknown stack '$stack': $first" >&2
                exit 5
            fi
            echo "load-env: 'pulumi config --stack $stack' failed (exit $rc): ${first:-<no error output>}" >&2
            exit 7
        fi
        if ! printf '%s' "$json" | command jq -e 'type == "object"' >/dev/null 2>&1; then
            echo "load-env: 'pulumi config --stack $stack' did not print a JSON object" >&2
            exit 7
        fi

        missing=""
        for key in anthropicApiKey githubToken kubeconfig; do
            if ! printf '%s' "$json" | command jq -e --arg k "agent-orchestrator:$key" \
                '(.[$k].value | type) == "string" and (.[$k].value | length) > 0' >/dev/null 2>&1; then
                missing="$missing agent-orchestrator:$key"
            fi
        done
        if [[ -n "$missing" ]]; then
            echo "load-env: stack '$stack' is missing required secret config:$missing" >&2
            echo "load-env: set it with: (cd iac && pulumi config set --secret --stack $stack <key> ...)" >&2
            exit 8
        fi

        qa="$(printf '%s' "$json" | command jq -r '.["agent-orchestrator:anthropicApiKey"].value | @sh')" &&
            qg="$(printf '%s' "$json" | command jq -r '.["agent-orchestrator:githubToken"].value | @sh')" || {
            echo "load-env: could not extract values from pulumi's output" >&2
            exit 7
        }

        # kubeconfig file: outside the repo, 0700 dir, 0600 file, atomic replace.
        cfg_base="${XDG_CONFIG_HOME:-}"
        if [[ -z "$cfg_base" ]]; then
            if [[ -z "${HOME:-}" ]]; then
                echo "load-env: neither XDG_CONFIG_HOME nor HOME is set; nowhere to write the kubeconfig" >&2
                exit 9
            fi
            cfg_base="$HOME/.config"
        fi
        kdir="$cfg_base/agent-orchestrator"
        if ! command mkdir -p -- "$kdir" || ! kdir_real="$(CDPATH='' builtin cd -- "$kdir" && builtin pwd -P)"; then
            echo "load-env: cannot create directory $kdir" >&2
            exit 9
        fi
        if [[ "$kdir_real/" == "$repo_root/"* ]]; then
            echo "load-env: refusing to write the kubeconfig inside the repository ($kdir_real); set XDG_CONFIG_HOME/HOME elsewhere" >&2
            exit 9
        fi
        kfile="$kdir_real/kubeconfig-$stack"
        tmpk="$(command mktemp "$kdir_real/.kubeconfig-$stack.XXXXXX")" || {
            echo "load-env: cannot write to $kdir_real" >&2
            exit 9
        }
        if ! printf '%s' "$json" | command jq -j '.["agent-orchestrator:kubeconfig"].value' >|"$tmpk" ||
            ! command chmod 600 -- "$tmpk" ||
            ! command mv -f -- "$tmpk" "$kfile"; then
            command rm -f -- "$tmpk"
            echo "load-env: cannot write $kfile" >&2
            exit 9
        fi

        printf 'a=%s\ng=%s\nk=%q\n' "$qa" "$qg" "$kfile"
    )" || return $?

    a="" g="" k=""
    eval "$out" || return 7
    export ANTHROPIC_API_KEY="$a" GITHUB_TOKEN="$g" KUBECONFIG="$k"
    echo "load-env: stack '$stack': exported ANTHROPIC_API_KEY GITHUB_TOKEN KUBECONFIG" >&2
    return 0
}

__ao_load_env_rc=0
__ao_load_env_main "$@" || __ao_load_env_rc=$?
unset -f __ao_load_env_main
eval "unset __ao_load_env_rc; return $__ao_load_env_rc"
