#!/bin/sh
# Install the Debian packages sectorcast needs that are not installed yet.
#   tools/deps.sh          what the build and the programs need
#   tools/deps.sh --test   also what the test suite needs
# Runs apt-get as root (directly, or through sudo when available).
#
# Prints one line per step (what it installs and why); apt's own output
# goes to a log file ($DEPS_LOG, default ${TMPDIR:-/tmp}/sectorcast-deps.log)
# that is shown only when apt fails. Prints nothing when all is installed.
set -eu

# build: compiler, scons, and the libraries the programs link
build="scons gcc libc6-dev pkg-config libzmq3-dev libconfig-dev libsodium-dev
libjansson-dev libsqlite3-dev libmicrohttpd-dev libnats-dev"
# tests: cmocka (unit tests), clang + compiler-rt (fuzz targets), llvm
# (llvm-symbolizer: sanitizer stacks, and tests/fuzz/lsan.supp matches by
# function name), python3 with zmq/jwcrypto/nacl (integration and interop
# tests), nats-server (NATS bridge tests), prometheus (promtool checks the
# metrics), chromium (status page), systemd (systemd-analyze verify), make
# (test_sdk builds the installed example plugin project with its Makefile)
tests="libcmocka-dev clang libclang-rt-dev llvm python3 python3-zmq
python3-jwcrypto python3-nacl nats-server prometheus chromium systemd make"

want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

missing_of() { # package list -> those not installed
    m=""
    for p in $1; do
        st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$st" = "installed" ] || m="$m $p"
    done
    echo "$m"
}
miss_build=$(missing_of "$build")
miss_tests=""
[ "$want_tests" = 1 ] && miss_tests=$(missing_of "$tests")
[ -z "$miss_build$miss_tests" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo"
else
    echo "deps: missing packages:$miss_build$miss_tests" >&2
    echo "deps: run as root: apt-get install$miss_build$miss_tests" >&2
    exit 1
fi

log=${DEPS_LOG:-${TMPDIR:-/tmp}/sectorcast-deps.log}
: >"$log"
export DEBIAN_FRONTEND=noninteractive

step() { # message, command...: one line, apt's output to the log
    msg=$1; shift
    printf 'deps: %s ... ' "$msg"
    echo "=== $msg: $*" >>"$log"
    if "$@" >>"$log" 2>&1; then
        echo "done"
    else
        echo "FAILED"
        echo "deps: apt failed; its output ($log):" >&2
        tail -n 60 "$log" | sed 's/^/    /' >&2
        exit 1
    fi
}

packages() { # list -> "N package(s)"
    set -- $1
    [ $# = 1 ] && echo "1 package" || echo "$# packages"
}

step "updating the package lists (apt-get update)" $run apt-get update -q
# shellcheck disable=SC2086
[ -n "$miss_build" ] && step \
    "installing $(packages "$miss_build") to build:$miss_build" \
    $run apt-get install -y -q --no-install-recommends $miss_build
# shellcheck disable=SC2086
[ -n "$miss_tests" ] && step \
    "installing $(packages "$miss_tests") for the tests:$miss_tests" \
    $run apt-get install -y -q --no-install-recommends $miss_tests
echo "deps: all installed (apt's log: $log)"
