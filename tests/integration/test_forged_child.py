"""A compromised plugin child cannot get bad data signed, nor flood the log.

A plugin with isolation = "process" runs in a child whose host checks
every publish; the core checks a child's data again, because the child is
not trusted. These tests make the child forge its frames past its own
host: build/tests/libsc_forge.so (tests/preload/forge_child.c), preloaded
into the broker and inherited by its children, rewrites the data of the
child's PUBLISH frames after the host's check, so that the core receives
data that is not a JSON object with the child's valid credential.

The core must refuse exactly those messages (naming the plugin, the
channel and why), journal and send the others with contiguous seqs, and
keep its log bounded when every frame is forged (a burst of lines, then a
few per second, and a summary of what it held back).
"""
import base64
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ROOT, Gateway, burst_plugin, journal_rows, rogue_plugin,  # noqa: E402
                     run_tests, wait_for)

FORGE = os.path.join(ROOT, "build", "tests", "libsc_forge.so")
CHANNEL = "energy.test.forge"
DROPPED = "plugin 'rogue': message for %s dropped: data not a JSON object" % CHANNEL


def forging_env(mode):
    assert os.path.exists(FORGE), FORGE + " not built (scons)"
    env = dict(os.environ, SC_FORGE=mode, LD_PRELOAD=FORGE)
    # the sanitizer build: its runtime is not first in the preload list
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    return env


def child_rogue(count, interval_ms):
    p = rogue_plugin(publish=[CHANNEL], count=count, interval_ms=interval_ms)
    p["isolation"] = "process"
    return p


def data_n(jws):
    payload = jws.split(b".")[1]
    payload += b"=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))["data"]["n"]


def test_forged_data_is_refused_and_the_rest_delivered():
    """Messages 2, 4 and 6 arrive as an array, a cut-off object and an
    object with a duplicated member: refused; 1, 3, 5, 7, 8 journaled as
    seqs 1..5."""
    with Gateway(plugins=[child_rogue(8, 50)], extra={"log_level": "info"},
                 env=forging_env("some")) as gw:
        wait_for(lambda: "published 8 valid message(s); done" in gw.broker.log(), 30,
                 "the child published (its host accepted all 8)")
        wait_for(lambda: gw.broker.log().count(DROPPED) >= 3, 15, "3 refusals logged")
        wait_for(lambda: len(journal_rows(gw, CHANNEL)) >= 5, 15, "5 journaled")
        time.sleep(0.5)
        rows = journal_rows(gw, CHANNEL)
        assert [s for s, _ in rows] == [1, 2, 3, 4, 5], rows
        assert [data_n(j) for _, j in rows] == [1, 3, 5, 7, 8], rows
        log = gw.broker.log()
        assert log.count(DROPPED) == 3, log[-3000:]
        # the child is told: its frames were ACKed "refused"
        assert "frame(s) refused by the core (its log says why)" in log, log[-3000:]
        assert gw.stop() == 0


def test_a_flood_of_forged_frames_keeps_the_log_bounded():
    """Every frame of the child forged, 1,500 of them within seconds: the
    core logs a burst and then a few lines a second, sums up the rest, and
    a well-behaved plugin's messages still all go through."""
    with Gateway(plugins=[child_rogue(1500, 1),
                          burst_plugin("energy.test.good", count=300, interval_ms=5,
                                       key_count=1)],
                 extra={"log_level": "info"}, env=forging_env("all")) as gw:
        t0 = time.monotonic()
        wait_for(lambda: "published 1500 valid message(s); done" in gw.broker.log(), 60,
                 "the child published")
        wait_for(lambda: len(journal_rows(gw, "energy.test.good")) >= 300, 30,
                 "the good plugin's 300 journaled")
        # the summary comes 10 s after the first line held back
        wait_for(lambda: re.search(r"\d+ similar line\(s\) from rogue suppressed",
                                   gw.broker.log()), 20, "the summary line")
        elapsed = time.monotonic() - t0
        log = gw.broker.log()
        lines = log.count("plugin 'rogue': message for %s dropped" % CHANNEL)
        # a burst of 20, then 5 a second (+1 for a refill at the edges)
        assert 20 <= lines <= 20 + 5 * (elapsed + 1), (lines, elapsed)
        held = sum(int(n) for n in re.findall(r"(\d+) similar line\(s\) from rogue suppressed",
                                              log))
        assert lines + held <= 1500 and held >= 1000, (lines, held)
        assert journal_rows(gw, CHANNEL) == [], "a forged message was journaled"
        assert gw.stop() == 0


if __name__ == "__main__":
    run_tests([test_forged_data_is_refused_and_the_rest_delivered,
               test_a_flood_of_forged_frames_keeps_the_log_bounded])
