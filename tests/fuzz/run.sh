#!/bin/sh
# Build the libFuzzer targets (scons fuzz=1, clang) and run each one for a
# bounded time on a copy of its seed corpus (tests/fuzz/corpus/<target>/),
# one target per core at a time.
# A crash, leak, sanitizer report, timeout or out-of-memory fails the
# target; its reproducer is kept and named. Ends with "N passed, N failed".
#
#   tests/fuzz/run.sh                 every target, FUZZ_SECONDS (20) each
#   tests/fuzz/run.sh fuzz_request    one target
#   FUZZ_SECONDS=300 tests/fuzz/run.sh
#
# Reproduce a failure: build/fuzz/fuzz/<target> <reproducer file>
set -u
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-20}
out=build/fuzz/fuzz

if ! command -v clang >/dev/null 2>&1; then
    echo "clang not found (needed for -fsanitize=fuzzer)"
    echo "0 passed, 1 failed"; exit 1
fi
# only the fuzz targets and what they link: the rest of the tree is built
# and tested by tools/test.sh
echo "fuzz: building the targets (scons fuzz=1, clang)"
if ! scons -Q -j"$(nproc 2>/dev/null || echo 2)" fuzz=1 "$out"; then
    echo "fuzz build failed"; echo "0 passed, 1 failed"; exit 1
fi

targets=${*:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
work=$(mktemp -d "${TMPDIR:-/tmp}/sectorcast-fuzz.XXXXXX")
passed=0; failed=0; failures=""
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

jobs=$(nproc 2>/dev/null || echo 2)

# one target, its exit status in $work/$t/rc (run in the background)
run_target() {
    t=$1
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    # new inputs go to the work copy; the seeds in the tree stay as they are
    # shellcheck disable=SC2086
    "$out/$t" "$work/$t/corpus" "tests/fuzz/corpus/$t" $dict \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="$work/$t/artifacts/" >"$work/$t/log" 2>&1
    echo $? >"$work/$t/rc"
}

# one target per core at a time (each fuzzer is one process on one core)
running=0
for t in $targets; do
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    [ -x "$out/$t" ] || continue
    echo "fuzz: running $t for ${seconds}s"
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait

for t in $targets; do
    if [ ! -x "$out/$t" ]; then
        echo "FAIL  $t: $out/$t was not built"
        failed=$((failed + 1)); failures="$failures $t"; continue
    fi
    rc=$(cat "$work/$t/rc" 2>/dev/null || echo "?")
    stats=$(grep -E '^stat::number_of_executed_units' "$work/$t/log" | awk '{print $2}')
    if [ "$rc" = 0 ] && [ -z "$(ls -A "$work/$t/artifacts")" ]; then
        passed=$((passed + 1))
        echo "PASS  $t (${stats:-?} runs in ${seconds}s, corpus $(ls "$work/$t/corpus" | wc -l) new)"
    else
        failed=$((failed + 1)); failures="$failures $t"
        echo "FAIL  $t (exit $rc)"
        grep -E 'ERROR|SUMMARY|WARNING|==[0-9]+==|runtime error|deadly signal|Test unit written' \
            "$work/$t/log" | head -20 | sed 's/^/      /'
        for a in "$work/$t"/artifacts/*; do
            [ -f "$a" ] && echo "      reproducer: $a ($out/$t $a)"
        done
    fi
done

echo
if [ -n "$failures" ]; then
    echo "failed:$failures"; echo "logs and reproducers: $work"
else
    rm -rf "$work"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
