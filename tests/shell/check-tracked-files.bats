#!/usr/bin/env bats
# Tests for scripts/check-tracked-files.sh: every file tracked by git is under 1 MiB.
# Each test builds a throw-away git repository under $BATS_TEST_TMPDIR.

bats_require_minimum_version 1.5.0

setup() {
    CHECK="$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)/scripts/check-tracked-files.sh"
    REPO="$BATS_TEST_TMPDIR/repo"
    git init -q "$REPO"
    git -C "$REPO" config user.email test@example.invalid
    git -C "$REPO" config user.name test
    printf 'hello\n' >"$REPO/README"
}

# bytes FILE N: writes a file of exactly N bytes.
bytes() {
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/zero >"$1"
}

commit_all() {
    git -C "$REPO" add -A
    git -C "$REPO" commit -qm test
}

@test "small tracked files pass" {
    bytes "$REPO/data/almost.bin" $((1024 * 1024 - 1))
    commit_all
    run --separate-stderr bash "$CHECK" "$REPO"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [[ "$stderr" == *"2 tracked files, all under 1 MiB"* ]]
}

@test "a committed file of 1 MiB or more fails and is named with its size" {
    bytes "$REPO/dist/tool-1.0.whl" $((12 * 1024 * 1024))
    bytes "$REPO/exactly-1MiB" $((1024 * 1024))
    commit_all
    run --separate-stderr bash "$CHECK" "$REPO"
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"dist/tool-1.0.whl is 12582912 bytes (12.0 MiB)"* ]]
    [[ "$stderr" == *"exactly-1MiB is 1048576 bytes (1.0 MiB)"* ]]
    [[ "$stderr" == *"2 tracked file(s) of 1 MiB or more"* ]]
    [[ "$stderr" != *README* ]]
}

@test "a big file that is only staged fails too" {
    commit_all
    bytes "$REPO/big.tar.gz" $((2 * 1024 * 1024))
    git -C "$REPO" add big.tar.gz
    run --separate-stderr bash "$CHECK" "$REPO"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"big.tar.gz is 2097152 bytes"* ]]
}

@test "a big untracked or ignored file does not count" {
    printf 'target/\n' >"$REPO/.gitignore"
    commit_all
    bytes "$REPO/target/debug/app" $((3 * 1024 * 1024))
    bytes "$REPO/scratch.bin" $((3 * 1024 * 1024))
    run --separate-stderr bash "$CHECK" "$REPO"
    [ "$status" -eq 0 ]
}

@test "removing the big file from git makes the check pass again" {
    bytes "$REPO/tool.whl" $((2 * 1024 * 1024))
    commit_all
    run bash "$CHECK" "$REPO"
    [ "$status" -eq 1 ]
    git -C "$REPO" rm -q tool.whl
    run bash "$CHECK" "$REPO"
    [ "$status" -eq 0 ]
}

@test "paths with spaces and newlines are reported intact" {
    bytes "$REPO/odd dir/a"$'\n'"b.bin" $((1024 * 1024 + 1))
    commit_all
    run --separate-stderr bash "$CHECK" "$REPO"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"odd dir/a"$'\n'"b.bin is 1048577 bytes"* ]]
}

@test "a directory that is not a git work tree is an error (rc 2)" {
    mkdir -p "$BATS_TEST_TMPDIR/plain"
    run --separate-stderr bash "$CHECK" "$BATS_TEST_TMPDIR/plain"
    [ "$status" -eq 2 ]
    [[ "$stderr" == *"not inside a git work tree"* ]]
}

@test "works from a subdirectory and under the caller's noclobber" {
    bytes "$REPO/sub/big" $((1024 * 1024))
    commit_all
    run --separate-stderr env SHELLOPTS=noclobber bash "$CHECK" "$REPO/sub"
    echo "$stderr"
    [ "$status" -eq 1 ]
    [[ "$stderr" == *"sub/big is 1048576 bytes"* ]]
}

@test "this repository passes" {
    run --separate-stderr bash "$CHECK"
    echo "$stderr"
    [ "$status" -eq 0 ]
}
