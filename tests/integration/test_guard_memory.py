"""Memory bounded by configuration (issue 12, row 3).

A subscriber that never reads keeps the broker's RSS within
limits.send_queue_bytes (plus slack) and is cut once it has fallen behind.
Release build only (tests/release-only): under ASan the allocator's
quarantine keeps freed memory resident, so RSS proves nothing there.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_guard_memory.py
"""
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Gateway, burst_plugin, rss_kib, run_tests, wait_for, zmq_socket  # noqa: E402


def wait_log(gw, needle, count=1, timeout=15):
    wait_for(lambda: gw.broker.log().count(needle) >= count, timeout,
             "broker log %r" % needle)



def test_non_reading_subscriber_keeps_rss_bounded():
    """A subscriber that never reads, under ~50 MB of messages (4 KB each,
    at a pace the core keeps up with), costs the broker no more than
    limits.send_queue_bytes (plus slack), is cut once it has fallen behind
    for limits.slow_subscriber_ms, and is logged once. (Today's main
    queues all of it: 100,000 messages per connection.)"""
    budget = 4 * 1024 * 1024
    gw = Gateway(extra={"gateway": {"heartbeat_ms": 0, "max_data_bytes": 8192}},
                 start=False,
                 groups={"limits": {"send_queue_bytes": budget, "slow_subscriber_ms": 2000}})
    ctx = zmq.Context()
    try:
        with gw:
            gw.plugins = [burst_plugin("energy.bulk", count=12000, pad_bytes=4000,
                                       interval_ms=1, start_delay_ms=3000)]
            gw.write_config()
            gw.start()
            s = zmq_socket(ctx, zmq.SUB, gw, "motie")
            s.setsockopt(zmq.RCVHWM, 1)
            s.setsockopt(zmq.RCVBUF, 4096)
            s.setsockopt(zmq.RECONNECT_IVL, 60000)  # stay away once cut
            s.setsockopt(zmq.SUBSCRIBE, b"energy.")
            s.connect(gw.endpoint)
            gw.wait_subscribed("motie", "energy.")
            pid = gw.broker.proc.pid
            base = rss_kib(pid)
            peak = base
            deadline = time.monotonic() + 90
            while "burst done" not in gw.broker.log() and time.monotonic() < deadline:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.05)
            assert "burst done: 12000" in gw.broker.log(), gw.broker.log()[-3000:]
            wait_log(gw, "(limits.slow_subscriber_ms)", timeout=15)
            assert gw.broker.log().count("(limits.slow_subscriber_ms)") == 1
            growth = (peak - base) * 1024
            # the queue bound, plus the journal's page cache and the few
            # messages in flight in the core
            slack = 16 * 1024 * 1024
            assert growth < budget + slack, (
                "broker RSS grew by %.1f MiB with a non-reading subscriber "
                "(bound %.1f MiB)" % (growth / 2**20, (budget + slack) / 2**20))
            s.close(0)
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    run_tests([test_non_reading_subscriber_keeps_rss_bounded])
