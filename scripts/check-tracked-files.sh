#!/usr/bin/env bash
# check-tracked-files.sh - fail when a file tracked by git is 1 MiB or larger.
#
# Usage: scripts/check-tracked-files.sh [DIR]   (default: the repository holding this script)
#
# Binaries and downloaded artefacts (wheels, tarballs, prebuilt tools) do not belong in the
# repository: install them from their registry in a script instead. Every file in git's index
# (what is committed, plus what is staged) must be smaller than 1 MiB. Sizes are those of the
# staged blobs, so an unstaged edit in the work tree does not change the verdict.
#
# Exit status: 0 all files are small enough, 1 at least one is not (each is listed on
# stderr with its size), 2 DIR is not inside a git work tree or git failed.
# Run by .ci/run and `mise run lint`; tested by tests/shell/check-tracked-files.bats.
set -euo pipefail

readonly max_bytes=$((1024 * 1024))

if (($# > 1)); then
    echo "usage: $0 [DIR]" >&2
    exit 2
fi
dir="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)}"
if ! top="$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null)"; then
    echo "check-tracked-files: $dir is not inside a git work tree" >&2
    exit 2
fi

# Index entries: "<mode> <object> <stage>\t<path>", NUL-terminated so any path is safe
# (kept in a file: a shell variable cannot hold NUL).
listing="$(mktemp "${TMPDIR:-/tmp}/check-tracked-files.XXXXXX")"
trap 'rm -f -- "$listing"' EXIT
if ! git -C "$top" ls-files --stage -z >|"$listing"; then
    echo "check-tracked-files: git ls-files failed in $top" >&2
    exit 2
fi
# Gitlinks (mode 160000, submodules) name a commit, not a file: skipped.
paths=()
objects=()
while IFS= read -r -d '' entry; do
    read -r mode object _ <<<"${entry%%$'\t'*}"
    [[ "$mode" == 160000 ]] && continue
    objects+=("$object")
    paths+=("${entry#*$'\t'}")
done <"$listing"

sizes=()
if ((${#objects[@]} > 0)); then
    if ! mapfile -t sizes < <(printf '%s\n' "${objects[@]}" | git -C "$top" cat-file --batch-check='%(objectsize)'); then
        echo "check-tracked-files: git cat-file failed in $top" >&2
        exit 2
    fi
fi
if ((${#sizes[@]} != ${#objects[@]})); then
    echo "check-tracked-files: git cat-file answered ${#sizes[@]} sizes for ${#objects[@]} files" >&2
    exit 2
fi

too_big=0
for i in "${!paths[@]}"; do
    size="${sizes[$i]}"
    if [[ ! "$size" =~ ^[0-9]+$ ]]; then
        echo "check-tracked-files: no size for ${paths[$i]} (git cat-file: $size)" >&2
        exit 2
    fi
    if ((size >= max_bytes)); then
        printf 'check-tracked-files: %s is %d bytes (%d.%d MiB); tracked files must be under 1 MiB\n' \
            "${paths[$i]}" "$size" $((size / max_bytes)) $((size % max_bytes * 10 / max_bytes)) >&2
        too_big=$((too_big + 1))
    fi
done

if ((too_big > 0)); then
    echo "check-tracked-files: $too_big tracked file(s) of 1 MiB or more: remove them with 'git rm --cached' and install such artefacts from their registry instead" >&2
    exit 1
fi
echo "check-tracked-files: ${#paths[@]} tracked files, all under 1 MiB" >&2
