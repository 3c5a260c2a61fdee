"""Exactly-once, in-order delivery across crashes, restarts and slow readers.

A real sectorcastd on loopback with the test plugin tests/plugins/burst.c
(numbered messages on energy.test), and sectorcast-sub with the service
endpoint (-s) and a state file (--state). Every test compares what the
subscriber printed with what the broker's journal holds.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_resume.py [TEST...]
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, burst_plugin, journal_head, journal_rows,  # noqa: E402
                     jws_envelope, run_tests, wait_for)

CH = "energy.test"
ASAN = "asan" in os.environ.get("SC_BUILD", "")
SLOW = 3 if ASAN else 1


def seqs_of(envs, channel=CH):
    return [e["seq"] for e in envs if e["channel"] == channel]


def assert_exactly(seqs, first, last, what):
    want = list(range(first, last + 1))
    if seqs != want:
        dups = len(seqs) - len(set(seqs))
        missing = sorted(set(want) - set(seqs))
        raise AssertionError("%s: %d printed, want %d..%d; %d duplicate(s); missing %s; "
                             "out of order: %s" % (what, len(seqs), first, last, dups,
                                                   missing[:10], seqs != sorted(seqs)))


def burst_done(gw):
    return gw.broker and gw.broker.log().count("burst done")


def settled_head(gw, channel=CH, quiet=1.0, timeout=60, expect=0):
    """The channel's head once it stopped moving for `quiet` seconds (the
    plugin says "done" when its last publish is queued, not journaled).
    With `expect`, first wait (bounded) for the head to reach it: on a
    loaded machine the core may pause longer than `quiet`."""
    if expect:
        wait_for(lambda: journal_head(gw, channel) >= expect, timeout * SLOW,
                 "head of %s at %d" % (channel, expect), interval=0.1)
    deadline = time.monotonic() + timeout * SLOW
    head, since = journal_head(gw, channel), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        h = journal_head(gw, channel)
        if h != head:
            head, since = h, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return head
    raise AssertionError("journal head of %s kept moving" % channel)


def test_broker_kill9_midstream():
    """kill -9 of the broker in the middle of 10,000 messages, restart on
    the same journal: the subscriber prints every journaled message once,
    in order; seq continues after the restart in the same epoch."""
    count = 10000
    gw = Gateway(plugins=[burst_plugin(CH, count=count, interval_ms=1,
                                       start_delay_ms=1500)])
    with gw:
        state = os.path.join(gw.tmp, "sub.state")
        sub = gw.subscriber("motie", [CH + "."], ["--state", state], service=True)
        gw.wait_subscribed("motie", CH + ".")
        wait_for(lambda: journal_head(gw, CH) >= 3000, 60 * SLOW, "3000 journaled")
        gw.broker.kill()  # SIGKILL
        head_at_kill = journal_head(gw, CH)
        assert head_at_kill < count, "burst finished before the kill (%d)" % head_at_kill
        gw.start()
        wait_for(lambda: burst_done(gw), 120 * SLOW, "burst finished after restart")
        settled_head(gw)
        rows = journal_rows(gw, CH)
        n = len(rows)
        assert [s for s, _ in rows] == list(range(1, n + 1)), "journal seqs not 1..N"
        # plugin state commits with the journal, never ahead of it: no
        # value the plugin published is missing; the few published after
        # its last state write before the kill are published again
        values = [jws_envelope(j)["data"]["n"] for _, j in rows]
        assert set(values) == set(range(1, count + 1)), "a published value is missing"
        assert count <= n <= count + 200, n
        epochs = {jws_envelope(j)["epoch"] for _, j in rows}
        assert len(epochs) == 1, "journal has several epochs: %s" % epochs
        wait_for(lambda: len(sub.lines()) >= n, 120 * SLOW, "%d messages printed" % n)
        time.sleep(1.5)  # a heartbeat later: nothing more may come
        envs = sub.envelopes()
        assert_exactly(seqs_of(envs), 1, n, "subscriber")
        assert {e["epoch"] for e in envs} == epochs
        # the very bytes the journal holds
        assert [e["id"] for e in envs] == [jws_envelope(j)["id"] for _, j in rows]
        assert sub.stop() == 0
        assert "unrecoverable" not in sub.log(), sub.log()


def test_subscriber_kill9_and_resume():
    """kill -9 of the subscriber during a stream, restart with the same
    --state: both runs together print every message once, in order. The
    second run checks signatures on 2 threads (its catch-up replay and the
    live batches)."""
    count = 10000
    gw = Gateway(plugins=[burst_plugin(CH, count=count, interval_ms=1,
                                       start_delay_ms=1500)])
    with gw:
        state = os.path.join(gw.tmp, "sub.state")
        sub1 = gw.subscriber("motie", [CH + "."], ["--state", state], name="sub1", service=True)
        gw.wait_subscribed("motie", CH + ".")
        wait_for(lambda: len(sub1.lines()) >= 2500, 60 * SLOW, "2500 printed")
        sub1.kill()
        printed1 = sub1.envelopes(torn_ok=True)
        assert len(printed1) < count, "stream finished before the kill"
        sub2 = gw.subscriber("motie", [CH + "."], ["--state", state, "--verify-threads", "2"],
                             name="sub2", service=True)
        wait_for(lambda: burst_done(gw), 120 * SLOW, "burst finished")
        n = settled_head(gw, expect=count)
        wait_for(lambda: len(printed1) + len(sub2.lines()) >= n, 120 * SLOW,
                 "%d printed in all" % n)
        time.sleep(1.5)
        both = seqs_of(printed1) + seqs_of(sub2.envelopes())
        assert_exactly(both, seqs_of(printed1)[0], n, "both runs")
        assert sub2.stop() == 0
        assert "unrecoverable" not in sub2.log(), sub2.log()


def test_slow_subscriber_catches_up_by_replay():
    """A subscriber stopped (SIGSTOP) while more messages flow than the
    gateway and its socket queue for it overflows; after SIGCONT it gets
    every message by replay, in order. Another subscriber, reading at full
    speed, gets everything too (live; a gap it may suffer when its bounded
    send queue overflows on a loaded machine is repaired by replay). The
    slow one checks signatures on 3 threads: replay pages and live batches
    are verified side by side and still printed in order."""
    # the slow one's queues (its --hwm, the broker's send queue, the
    # kernel's socket buffers) hold ~7,400 of these: 40,000 overflow them
    # by far (~32,000 replayed here)
    count = 40000
    gw = Gateway(plugins=[burst_plugin(CH, count=count, start_delay_ms=2000)],
                 extra={"gateway": {"durability": "normal"}, "log_level": "info"})
    with gw:
        slow = gw.subscriber("motie", [CH + "."],
                             ["--state", os.path.join(gw.tmp, "slow.state"),
                              "--hwm", "1000", "--verify-threads", "3"], name="slow",
                             service=True)
        fast = gw.subscriber("motie", [CH + "."], name="fast", service=True)
        gw.wait_subscribed("motie", CH + ".")
        wait_for(lambda: gw.broker.log().count("agency 'motie' subscribed " + CH + ".") >= 2,
                 10, "both subscribed")
        wait_for(lambda: len(slow.lines()) >= 100, 60 * SLOW, "slow got some")
        slow.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: burst_done(gw), 300 * SLOW, "burst finished", interval=0.5)
            time.sleep(2)
        finally:
            slow.proc.send_signal(signal.SIGCONT)
        n = settled_head(gw, expect=count)
        assert n == count, n
        wait_for(lambda: len(fast.lines()) >= n, 300 * SLOW, "fast got all", interval=0.5)
        wait_for(lambda: len(slow.lines()) >= n, 300 * SLOW, "slow caught up", interval=0.5)
        time.sleep(1.5)
        assert_exactly(seqs_of(fast.envelopes()), seqs_of(fast.envelopes())[0], n, "fast")
        assert_exactly(seqs_of(slow.envelopes()), seqs_of(slow.envelopes())[0], n, "slow")
        assert slow.stop() == 0 and fast.stop() == 0
        assert "unrecoverable" not in fast.log() + slow.log()
        # it really overflowed and was repaired by replay
        summary = [l for l in slow.log().splitlines() if "replayed" in l][-1]
        replayed = int(summary.split(" replayed")[0].rsplit(" ", 1)[1])
        assert replayed > 1000, summary


def test_late_joiner_snapshot_then_live():
    """--snapshot: a late joiner first gets the latest message of each key,
    then the live stream from the snapshot's head on, with no gap."""
    gw = Gateway(plugins=[burst_plugin(CH, count=3000, interval_ms=2, key_count=10)])
    with gw:
        wait_for(lambda: journal_head(gw, CH) >= 200, 30 * SLOW, "200 journaled")
        sub = gw.subscriber("motie", [CH + "."], ["--snapshot"], service=True)
        wait_for(lambda: burst_done(gw), 120 * SLOW, "burst finished")
        n = settled_head(gw)
        wait_for(lambda: sub.envelopes() and sub.envelopes()[-1]["seq"] >= n, 60 * SLOW,
                 "joiner reached the head")
        time.sleep(1.5)
        envs = sub.envelopes()
        snap = envs[:10]
        keys = [e["key"] for e in snap]
        assert sorted(keys) == ["k%d" % i for i in range(10)], keys
        h = snap[-1]["seq"]
        # the latest of each key at head h: seqs h-9..h
        assert sorted(e["seq"] for e in snap) == list(range(h - 9, h + 1)), snap
        assert_exactly(seqs_of(envs[10:]), h + 1, n, "live after the snapshot")
        assert sub.stop() == 0


def test_replay_below_retention_is_reported():
    """A state file pointing below what retention keeps: the subscriber
    says exactly which seqs are gone and goes on from the oldest kept."""
    gw = Gateway(plugins=[burst_plugin(CH, count=100, start_delay_ms=1500)],
                 groups={"retention": [{"subtree": "energy.", "max_messages": 10}]})
    with gw:
        state = os.path.join(gw.tmp, "sub.state")
        sub1 = gw.subscriber("motie", [CH + "."], ["--state", state, "-n", "5"],
                             name="sub1", service=True)
        gw.wait_subscribed("motie", CH + ".")
        wait_for(lambda: not sub1.alive(), 30 * SLOW, "sub1 took 5")
        assert sub1.stop() == 0
        last = max(seqs_of(sub1.envelopes()))
        wait_for(lambda: burst_done(gw), 30 * SLOW, "burst finished")
        assert settled_head(gw) == 100
        gw.stop()
        gw.start()  # retention prunes at start
        wait_for(lambda: "retention: removed" in gw.broker.log(), 10, "pruning")
        sub2 = gw.subscriber("motie", [CH + "."], ["--state", state], name="sub2", service=True)
        line = "unrecoverable gap on %s: seq %d..90 pruned" % (CH, last + 1)
        wait_for(lambda: line in sub2.log(), 20 * SLOW, "'%s'" % line)
        wait_for(lambda: len(sub2.lines()) >= 10, 20 * SLOW, "the retained 10")
        time.sleep(1.5)
        assert_exactly(seqs_of(sub2.envelopes()), 91, 100, "after the gap")
        assert sub2.stop() == 0
        # the state now says 100: a third run prints nothing and reports nothing
        sub3 = gw.subscriber("motie", [CH + "."], ["--state", state, "-t", "2500"],
                             name="sub3", service=True)
        wait_for(lambda: not sub3.alive(), 20 * SLOW, "sub3 idle exit")
        assert sub3.stop() == 3 and sub3.lines() == [], sub3.log()
        assert "unrecoverable" not in sub3.log()


if __name__ == "__main__":
    run_tests([
        test_broker_kill9_midstream,
        test_subscriber_kill9_and_resume,
        test_slow_subscriber_catches_up_by_replay,
        test_late_joiner_snapshot_then_live,
        test_replay_below_retention_is_reported,
    ])
