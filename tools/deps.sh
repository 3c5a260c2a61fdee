#!/bin/sh
# Install the Debian packages sectorcast needs that are not installed yet.
#   tools/deps.sh          build + run dependencies
#   tools/deps.sh --test   also what the test suite needs
# Runs apt-get as root (directly, or through sudo when available).
set -eu

pkgs="scons gcc libc6-dev pkg-config libzmq3-dev libconfig-dev libsodium-dev
libjansson-dev libsqlite3-dev"
if [ "${1:-}" = "--test" ]; then
    # llvm: llvm-symbolizer, without which sanitizer stacks are not
    # symbolized and tests/fuzz/lsan.supp (by function name) cannot match
    pkgs="$pkgs libcmocka-dev clang libclang-rt-dev llvm python3 python3-zmq
python3-jwcrypto python3-nacl"
fi

missing=""
for p in $pkgs; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo"
else
    echo "deps: missing packages:$missing" >&2
    echo "deps: run as root: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$run apt-get update -q
# shellcheck disable=SC2086
$run apt-get install -y -q --no-install-recommends $missing
