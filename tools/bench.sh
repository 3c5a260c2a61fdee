#!/bin/sh
# tools/bench.sh - the end-to-end benchmark of issue 10 (docs/performance.md).
#
#   tools/bench.sh            build (release) and run the full benchmark
#   tools/bench.sh --smoke    small counts, a few seconds (CI runs this)
#   tools/bench.sh --help     every option (sizes, counts, journal size)
#
# Builds with scons (release, nice, -j2) and runs bench/bench.py, which
# drives everything on loopback and prints one table (docs/performance.md).
set -e
cd "$(dirname "$0")/.."
nice scons -Q -j2 >&2
exec /usr/bin/python3 bench/bench.py "$@"
