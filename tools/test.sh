#!/bin/sh
# Build everything (release and ASan+UBSan) and run the whole test suite:
# unit tests (cmocka), integration and interop tests (Debian's python3),
# each against both builds. Ends with "N passed, N failed".
#   tools/test.sh            everything
#   tools/test.sh --quick    release build only
set -u
cd "$(dirname "$0")/.."
./tools/deps.sh --test || exit 1

jobs=$(nproc 2>/dev/null || echo 2)
builds="build build/asan"
[ "${1:-}" = "--quick" ] && builds="build"

scons -Q -j"$jobs" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
case "$builds" in *asan*)
    scons -Q -j"$jobs" asan=1 || { echo "asan build failed"; echo "0 passed, 1 failed"; exit 1; } ;;
esac

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHON=/usr/bin/python3
passed=0; failed=0; failures=""
log=$(mktemp -d "${TMPDIR:-/tmp}/sectorcast-test.XXXXXX")

run() { # name, command...
    name=$1; shift
    out="$log/$(echo "$name" | tr '/ ' '__').log"
    if "$@" >"$out" 2>&1; then
        passed=$((passed + 1)); echo "PASS  $name"
    else
        failed=$((failed + 1)); failures="$failures $name"
        echo "FAIL  $name"; sed 's/^/      /' "$out" | tail -40
    fi
}

for b in $builds; do
    # every unit test source must have been built (none skipped)
    for src in tests/unit/test_*.c; do
        t="$b/tests/$(basename "$src" .c)"
        [ -x "$t" ] || { failed=$((failed + 1)); failures="$failures $t(not built)"; echo "FAIL  $t: not built"; }
    done
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        run "$t" "$t"
    done
    for t in tests/integration/test_*.py tests/interop/test_*.py; do
        [ -f "$t" ] || continue
        run "$b: $t" env SC_BUILD="$b" /usr/bin/python3 "$t"
    done
done

# fuzz targets (clang libFuzzer), a short bounded run each
if [ "${1:-}" != "--quick" ]; then
    run "fuzz: tests/fuzz/run.sh" env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" ./tests/fuzz/run.sh
fi

echo
[ -n "$failures" ] && echo "failed:$failures" && echo "logs: $log"
[ -z "$failures" ] && rm -rf "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
