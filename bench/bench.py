#!/usr/bin/python3
"""bench.py - the end-to-end benchmark of issue 10 (run it via tools/bench.sh).

Skeleton: rows are filled in as the measuring programs land.
"""
import sys

ROWS = [
    "raw libzmq CURVE PUB/SUB",
    "Ed25519 sign / verify (libsodium, one core)",
    "sectorcast end to end",
    "one-way latency",
    "fan-out, broker RSS per subscriber",
    "start / SIGHUP stall with a large journal",
    "replay from seq 1",
    "allocations / JSON parses per message",
]


def main():
    print("sectorcast end-to-end benchmark (skeleton)")
    for r in ROWS:
        print("%-48s %s" % (r, "not yet measured"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
