"""The benchmark's smoke mode (issue 10): tools/bench.sh --smoke runs every
part of the end-to-end benchmark with small counts and prints its one
table. Checks that every row is there with a figure -- never a timing.
Release build only (tests/release-only): under ASan the figures mean
nothing and the LD_PRELOAD allocation counter cannot run.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_bench.py
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, run_tests  # noqa: E402

# every row of bench/bench.py's table, by the start of its figure
ROWS = [
    "Ed25519 sign, one core, 512 B data",
    "Ed25519 verify, one core, 512 B data",
    "Ed25519 sign, one core, 4096 B data",
    "Ed25519 verify, one core, 4096 B data",
] + [
    "raw CURVE PUB/SUB, %d B data frames, %s" % (size, subs)
    for size in (512, 4096) for subs in ("1 sub", "10 subs")
] + [
    "raw SQLite, one ",
    "our journal (sc_journal), one message per transaction",
    "raw SQLite, groups of 1,000 rows",
    "one thread hand-off (inproc PUSH/PULL) at 1,000/s",
] + [
    "end to end %d B, durability %s, %s" % (size, dur, subs)
    for size in (512, 4096) for dur in ("normal", "full")
    for subs in ("1 verifying sub", "10 verifying subs")
] + [
    "end to end 512 B, one verifying sub on ",
] + [
    "broker alone 512 B normal, bare sub, sign_threads=1",
    "broker alone 512 B normal, bare sub, sign_threads=0",
    "broker alone 512 B normal, bare sub, 4,000 channels in turn",
    "throughput ceiling: ",
    "one-way latency at 1,000 msg/s, 512 B, bare sub",
    "one-way latency at 1,000 msg/s, 512 B, verifying sub",
    "one-way latency at 10,000 msg/s, 512 B, bare sub",
    "one-way latency at 10,000 msg/s, 512 B, verifying sub",
    "latency floor at 1,000 msg/s",
    "fan-out to 100 bare subs",
    "broker RSS per subscriber (100 subs)",
    "broker allocations per message",
    "broker JSON parses per message",
    "journal bytes per message",
    "start, empty journal",
    "start, 20,000-message journal",
    "SIGHUP stall, 20,000-message journal",
    "replay from seq 1, 3,000 messages signed this run",
    "replay from seq 1 after a restart",
    "live p99 at 1,000 msg/s while another sub replays",
    "the same, the replaying client at nice 19",
]


def test_smoke_prints_every_row():
    r = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "bench", "bench.py"),
                        "--smoke", "--quiet", "--build", os.path.relpath(BUILD, ROOT)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, "bench.py --smoke failed (%d):\n%s\n%s" % (
        r.returncode, r.stdout[-3000:], r.stderr[-6000:])
    lines = r.stdout.split("\n")
    assert lines[0].startswith("sectorcast end-to-end benchmark (smoke)"), r.stdout[:500]
    table = [l for l in lines if l.startswith("| ")]
    assert table[0].startswith("| figure "), table[:2]
    body = table[1:]
    for name in ROWS:
        hits = [l for l in body if l.startswith("| " + name)]
        assert len(hits) == 1, "row %r: %d times in\n%s" % (name, len(hits), r.stdout)
        value = hits[0].split("|")[2].strip()
        # every row has a figure (a number), whatever it is
        assert re.search(r"[0-9]", value), "row %r has no figure: %r" % (name, hits[0])
    assert len(body) == len(ROWS) + 1, "rows not checked here:\n%s" % "\n".join(
        l for l in body if not any(l.startswith("| " + n) for n in ROWS))


run_tests([test_smoke_prints_every_row])
