#!/bin/sh
# Build everything (release and ASan+UBSan) and run the whole test suite:
# unit tests (cmocka), integration and interop tests (Debian's python3),
# each against both builds, then the fuzz targets.
#   tools/test.sh            everything
#   tools/test.sh --quick    release build only, no fuzzing
#   tools/test.sh [--quick] TEST...   only these (tests/unit/test_jws.c,
#                            tests/integration/test_flow.py, tests/fuzz/run.sh)
#
# Output: one line per step of the install and the builds; "[i/N] TEST"
# when a test program starts; the python tests' and fuzz targets' cases as
# they pass (cmocka programs: their case count when they end); a failure
# names its case and shows its log. The closing line "N passed, N failed"
# counts test cases: cmocka cases, python test functions, fuzz targets (a
# program that fails outside any case, or runs none, counts one failure).
#
# tests/release-only lists tests (one path per line, # comments) too heavy
# for the sanitizer build: they run against build/ only, and the run says
# so. Full logs of every program are kept under $TMPDIR when a test fails.
# A program still running after SC_TEST_TIMEOUT seconds (600) is
# interrupted (SIGINT to its process group, SIGKILL 15 s later) and
# counted as one failure: a hang never holds up the run.
set -u
cd "$(dirname "$0")/.."
./tools/deps.sh --test || exit 1

jobs=$(nproc 2>/dev/null || echo 2)
limit=${SC_TEST_TIMEOUT:-600}
quick=0
[ "${1:-}" = "--quick" ] && { quick=1; shift; }
only=" $* "
builds="build build/asan"
[ $quick = 1 ] && builds="build"

start=$(date +%s)
log=$(mktemp -d "${TMPDIR:-/tmp}/sectorcast-test.XXXXXX")
passed=0; failed=0; failures=""

fail_line() { # text: a failure outside a test program (build, list)
    failed=$((failed + 1))
    failures="$failures
  $1"
    echo "FAIL  $1"
}

# --- builds -------------------------------------------------------------
for b in $builds; do
    case $b in *asan) what="ASan+UBSan (scons asan=1)"; arg="asan=1" ;;
               *) what="release (scons)"; arg="" ;; esac
    t0=$(date +%s)
    printf 'build: %s ... ' "$what"
    # shellcheck disable=SC2086
    if scons -Q -j"$jobs" $arg >"$log/scons-${b##*/}.log" 2>&1; then
        echo "ok ($(( $(date +%s) - t0 )) s)"
    else
        echo "FAILED"
        tail -n 40 "$log/scons-${b##*/}.log" | sed 's/^/      /'
        echo "logs: $log"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHON=/usr/bin/python3
export PYTHONUNBUFFERED=1
export CMOCKA_MESSAGE_OUTPUT=STDOUT # the format follow() reads

# --- tests/release-only ---------------------------------------------------
release_only=""
if [ -f tests/release-only ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        line=$(echo "$line" | tr -d ' \t\r')
        [ -z "$line" ] && continue
        if [ -e "$line" ]; then
            release_only="$release_only $line"
        else # a stale entry must not hide a test silently
            fail_line "tests/release-only: no such test: $line"
        fi
    done <tests/release-only
fi
is_release_only() { # source path
    case " $release_only " in *" $1 "*) return 0 ;; esac
    return 1
}

# --- the list of test programs: "kind|build|source|label" -----------------
plan="$log/plan"
: >"$plan"
for b in $builds; do
    for src in tests/unit/test_*.c; do
        [ -f "$src" ] || continue
        [ "$b" != build ] && is_release_only "$src" && continue
        echo "cmocka|$b|$src|$b/tests/$(basename "$src" .c)" >>"$plan"
    done
    for src in tests/integration/test_*.py tests/interop/test_*.py; do
        [ -f "$src" ] || continue
        [ "$b" != build ] && is_release_only "$src" && continue
        echo "python|$b|$src|$b: $src" >>"$plan"
    done
done
[ $quick = 0 ] && echo "fuzz|build|tests/fuzz/run.sh|fuzz: tests/fuzz/run.sh" >>"$plan"
if [ "$only" != "  " ]; then # TEST... given: only those
    : >"$plan.only"
    while IFS='|' read -r kind b src label; do
        case $only in *" $src "*|*" ./$src "*)
            echo "$kind|$b|$src|$label" >>"$plan.only" ;; esac
    done <"$plan"
    mv "$plan.only" "$plan"
    for t in $only; do # a test named but not found must not pass silently
        grep -q "|${t#./}|" "$plan" || fail_line "no such test: $t"
    done
fi
total=$(wc -l <"$plan")
ran_release_only="" # those of the plan
for src in $release_only; do
    grep -q "^[a-z]*|build|$src|" "$plan" &&
        ran_release_only="$ran_release_only $src"
done
[ -n "$ran_release_only" ] && [ $quick = 0 ] &&
    echo "release only (tests/release-only, not run under ASan):$ran_release_only"

# Read a test program's output (stdin), print its cases as they pass and a
# failed case with its lines, and write "passed failed|names" to $1.
# kind: cmocka ("[       OK ] name", "[  FAILED  ] name"), python
# (harness.run_tests: "ok   name (1.2s)", "FAIL name"), fuzz (run.sh:
# "PASS  target (...)", "FAIL  target (...)").
follow() { # result-file kind
    res=$1; kind=$2
    p=0; f=0; names=""; showing=0; listed=0
    case_log="$res.case" # the current cmocka case's lines
    : >"$case_log"
    while IFS= read -r line; do
        if [ $showing -gt 0 ]; then # a failed case's lines that follow it
            case $line in
            "ok   "*|"FAIL "*|"PASS  "*|"[ RUN      ]"*|[0-9]*" passed, "*" failed") showing=0 ;;
            *) echo "          $line"; showing=$((showing - 1)) ;;
            esac
        fi
        case $kind in
        cmocka)
            case $line in
            "[ RUN      ] "*) : >"$case_log" ;;
            "[       OK ] "*) p=$((p + 1)) ;;
            *"test(s), listed below:"*) listed=1 ;;
            "[  FAILED  ] "*|"[  SKIPPED ] "*)
                [ $listed = 1 ] && continue
                name=${line#\[*\] }
                case $name in *"test(s)"*) continue ;; esac
                f=$((f + 1)); names="$names $name"
                echo "        FAIL $name"
                tail -n 40 "$case_log" | sed 's/^/          /' ;;
            *) printf '%s\n' "$line" >>"$case_log" ;;
            esac ;;
        python)
            case $line in
            "ok   "*) p=$((p + 1)); echo "        $line" ;;
            "FAIL "*) f=$((f + 1)); names="$names ${line#FAIL }"
                echo "        $line"; showing=60 ;;
            esac ;;
        fuzz)
            case $line in
            "PASS  "*) p=$((p + 1)); echo "        $line" ;;
            "fuzz: "*) echo "        $line" ;; # building, running X
            "FAIL  "*) f=$((f + 1)); name=${line#FAIL  }
                names="$names ${name%% *}"; echo "        $line"; showing=30 ;;
            esac ;;
        esac
    done
    echo "$p $f|$names" >"$res"
}

i=0
while IFS='|' read -r kind b src label; do
    i=$((i + 1))
    note=""
    is_release_only "$src" && [ $quick = 0 ] && note="  (release only: tests/release-only)"
    echo "[$i/$total] $label$note"
    out="$log/$(echo "$label" | tr '/ :' '___').log"
    case $kind in
    cmocka) set -- "$b/tests/$(basename "$src" .c)" ;;
    python) set -- env SC_BUILD="$b" /usr/bin/python3 "$src" ;;
    fuzz) set -- env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" ./tests/fuzz/run.sh ;;
    esac
    t0=$(date +%s)
    if [ "$kind" = cmocka ] && [ ! -x "$1" ]; then
        echo "$1: not built (is libcmocka-dev installed?)" >"$out"
        echo 1 >"$out.rc"
        : | follow "$out.res" "$kind"
    else
        { timeout --signal=INT --kill-after=15 "$limit" "$@" </dev/null 2>&1
          echo $? >"$out.rc"; } | tee "$out" | follow "$out.res" "$kind"
    fi
    rc=$(cat "$out.rc")
    res=$(cat "$out.res")
    p=${res%% *}; res=${res#* }; f=${res%%|*}; names=${res#*|}
    secs=$(( $(date +%s) - t0 ))
    if [ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ "$secs" -ge "$limit" ]; }; then
        # a hang: whatever its cases said, the program counts as failed
        f=$((f + 1))
        names=" (timed out after $limit s${names:+; failed before:$names})"
        echo "        FAIL timed out after $limit s; the end of its log:"
        tail -n 40 "$out" | sed 's/^/          /'
    elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        # failed outside any case (crash, setup, exit status)
        f=1; names=" (exit $rc, outside any test case)"
        echo "        FAIL exit status $rc; the end of its log:"
        tail -n 40 "$out" | sed 's/^/          /'
    elif [ "$p" = 0 ] && [ "$f" = 0 ]; then
        f=1; names=" (no test case ran)"
        echo "        FAIL no test case ran; the end of its log:"
        tail -n 20 "$out" | sed 's/^/          /'
    fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" = 0 ]; then
        echo "        $p passed ($secs s)"
    else
        echo "        $p passed, $f failed ($secs s); log: $out"
        case $names in
        " ("*) failures="$failures
  $label:$names" ;;
        *) for n in $names; do
               failures="$failures
  $label: $n"
           done ;;
        esac
    fi
done <"$plan"

echo
mins=$(( ($(date +%s) - start) / 60 )); s=$(( ($(date +%s) - start) % 60 ))
echo "$total test programs in ${mins}m${s}s"
[ -n "$ran_release_only" ] && [ $quick = 0 ] &&
    echo "ran against the release build only (tests/release-only):$ran_release_only"
if [ -n "$failures" ]; then
    echo "failed:$failures"
    echo "logs: $log"
else
    rm -rf "$log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
