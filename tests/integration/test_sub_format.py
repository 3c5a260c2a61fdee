"""sectorcast-sub's output formats and closing counts.

Golden files (tests/golden/, written by tests/golden/record.py from a real
broker run): stream.txt is a recorded stream of each kind (task created,
updated, closed; standard proposed; alert raised, updated twice, cleared)
with a heartbeat among them; stream.text is what --format text prints for
it (TZ=KST-9), stream.json the signed payloads, decoded independently.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, ROOT, Gateway, journal_heads, journal_query, run_tests,  # noqa: E402
                     start_energy, wait_for)

GOLDEN = os.path.join(ROOT, "tests", "golden")
STREAM = os.path.join(GOLDEN, "stream.txt")
JWKS = os.path.join(GOLDEN, "jwks.json")
SUB = os.path.join(BIN, "sectorcast-sub")
ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def sub_input(*args, stream=STREAM, env=None):
    e = dict(os.environ, TZ="KST-9")
    e.pop("NO_COLOR", None)
    e.update(env or {})
    return subprocess.run([SUB, "--input", stream, "-j", JWKS] + list(args),
                          capture_output=True, env=e, timeout=30)


def golden(name):
    with open(os.path.join(GOLDEN, name), "rb") as f:
        return f.read()


def recorded():
    """[(topic, frames...)] of the recorded stream."""
    with open(STREAM, "rb") as f:
        return [line.split(b" ", 2) for line in f.read().splitlines()]


def payload(jws):
    part = jws.split(b".")[1]
    return base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4))


def test_text_golden():
    r = sub_input("--format", "text")
    assert r.returncode == 0, r.stderr
    assert r.stdout == golden("stream.text"), "\n" + r.stdout.decode()
    assert r.stderr.decode().strip() == \
        "sectorcast-sub: 9 delivered, 0 refused, 1 heartbeats (from %s)" % STREAM, r.stderr
    lines = r.stdout.decode().splitlines()
    # one line per message, heartbeat excluded; the kinds in the stream
    kinds = [line.split()[4] for line in lines]
    assert kinds == ["task.created", "task.created", "task.updated", "task.closed",
                     "standard.proposed", "alert.raised", "alert.updated",
                     "alert.updated", "alert.cleared"], kinds
    assert not any("heartbeat" in line for line in lines)
    # local time: the envelope's ts (UTC) shown in TZ=KST-9, 9 h later
    ts = re.search(rb'"ts":"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)',
                   payload(recorded()[0][1])).groups()
    h = (int(ts[1]) + 9) % 24
    assert lines[0][11:19] == "%02d:%s:%s" % (h, ts[2].decode(), ts[3].decode()), lines[0]
    # the fields that matter per kind
    assert "at-risk" in lines[2] and "completed" in lines[3]
    assert "proposal" in lines[4]
    assert "Severe" in lines[5] and "LNG inventory low | Severe: " in lines[5]
    assert "Cleared: " in lines[8]


def test_json_unchanged_byte_for_byte():
    want = b"".join(payload(f[1]) + b"\n" for f in recorded() if len(f) == 2)
    assert want == golden("stream.json")
    default = sub_input()
    assert default.returncode == 0, default.stderr
    assert default.stdout == want
    explicit = sub_input("--format", "json", "--color", "always")
    assert explicit.stdout == want  # colour is for text only


def test_color():
    always = sub_input("--format", "text", "--color", "always")
    assert b"\x1b[" in always.stdout
    assert ANSI.sub(b"", always.stdout) == golden("stream.text")
    for args, env in ((["--color", "never"], None), (["--color", "auto"], None),
                      ([], {"NO_COLOR": "1"})):
        r = sub_input("--format", "text", *args, env=env)
        assert r.stdout == golden("stream.text"), args  # not a terminal
    bad = sub_input("--format", "yaml")
    assert bad.returncode == 2 and b"--format must be json or text" in bad.stderr
    bad = sub_input("--color", "sometimes")
    assert bad.returncode == 2 and b"--color must be auto, always or never" in bad.stderr


def test_input_still_verifies():
    """A recorded stream is verified like a live one: a changed payload or
    a message under another topic is refused, and control characters of a
    verified message cannot reach the terminal."""
    frames = recorded()
    tmp = tempfile.mkdtemp(prefix="sc-golden-")
    path = os.path.join(tmp, "stream.txt")
    h, p, s = frames[0][1].split(b".")
    forged = h + b"." + p[:-4] + (b"AAAA" if p[-4:] != b"AAAA" else b"BBBB") + b"." + s
    try:
        with open(path, "wb") as f:
            f.write(frames[0][0] + b" " + forged + b"\n")
            f.write(b"energy.nuclear.tasks. " + frames[1][1] + b"\n")
            f.write(frames[1][0] + b" " + frames[1][1] + b"\n")
        r = sub_input("--format", "text", stream=path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == golden("stream.text").splitlines(True)[1], r.stdout
    err = r.stderr.decode()
    assert err.count("refused") >= 2 and "1 delivered, 2 refused" in err, err


def test_live_snapshot_then_live_counts():
    """Through a real broker: --format text groups the snapshot under a
    heading, then live changes; the closing counts keep the snapshot, the
    replayed and the live messages apart; JSON lines stay the payloads."""
    with Gateway(start=False) as gw:
        reg, full = start_energy(gw)
        os.rename(os.path.join(full, "tasks.json"), os.path.join(reg, "tasks.json"))
        wait_for(lambda: sum(journal_heads(gw).values()) >= 13, 20, "13 tasks journaled")
        text = gw.subscriber("motie", ["energy."], service=True,
                             extra_args=["--snapshot", "--format", "text", "--color", "never"])
        js = gw.subscriber("motie", ["energy."], service=True, extra_args=["--snapshot"])
        wait_for(lambda: "=== live: " in text.stdout(), 20, "live heading")
        wait_for(lambda: len(js.lines()) >= 13, 20, "json snapshot")
        # a live change
        doc = open(os.path.join(reg, "tasks.json")).read()
        doc = doc.replace('"status": "planned"', '"status": "on-hold"', 1)
        with open(os.path.join(reg, "t.tmp"), "w") as f:
            f.write(doc)
        os.rename(os.path.join(reg, "t.tmp"), os.path.join(reg, "tasks.json"))
        wait_for(lambda: "task.updated" in text.stdout(), 20, "live update in text")
        wait_for(lambda: len(js.lines()) >= 14, 20, "live update in json")
        text.stop()
        js.stop()
        out = text.stdout().splitlines()
        assert out[0] == "=== snapshot: the current state when we joined, " \
                         "the latest message of every key ===", out[:2]
        live = [i for i, line in enumerate(out) if line.startswith("=== live: ")]
        assert len(live) == 1, out
        snap_lines = out[1:live[0]]
        assert len(snap_lines) == 13 and all(" task." in x for x in snap_lines), snap_lines
        assert out[live[0]] == "=== live: changes as they arrive (the 13 above are " \
                               "the snapshot) ===", out[live[0]]
        after = out[live[0] + 1:]
        assert len(after) == 1 and " task.updated " in after[0] and "on-hold" in after[0], after
        summary = text.log().strip().splitlines()[-1]
        assert summary == ("sectorcast-sub: 14 delivered: 13 from the snapshot, 0 replayed "
                           "to fill gaps, 1 live; 0 refused, 0 duplicates dropped, 0 lost"), summary
        # JSON lines: exactly the journaled payloads, byte for byte
        rows = journal_query(gw, "SELECT jws FROM messages")
        payloads = set(payload(bytes(j) if not isinstance(j, str) else j.encode())
                       for (j,) in rows)
        with open(js.stdout_path, "rb") as f:
            got = f.read().splitlines()
        assert len(got) == 14 and all(g in payloads for g in got), got[:2]
        assert js.log().strip().splitlines()[-1].startswith(
            "sectorcast-sub: 14 delivered: 13 from the snapshot, 0 replayed to fill gaps, 1 live;")


if __name__ == "__main__":
    run_tests([test_text_golden, test_json_unchanged_byte_for_byte, test_color,
               test_input_still_verifies, test_live_snapshot_then_live_counts])
