"""The service socket's memory is bounded by configuration (issue 12, row 3).

A service client that asks for a large replay or snapshot and never reads
costs the broker no more than limits.send_queue_bytes per connection (plus
slack): the reply is paced by what the peer reads, not queued whole, and
not cut -- once the client reads it gets every message and the end frame.
Release build only (tests/release-only): under ASan the allocator's
quarantine keeps freed memory resident, so RSS proves nothing there.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_svcguard_memory.py
"""
import json
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, burst_plugin, jws_envelope, rss_kib, run_tests,  # noqa: E402
                     wait_for, zmq_socket)

COUNT, KEYS, PAD = 8000, 3000, 5000


def read_reply(sock, rid, timeout):
    """Every frame set of one reply: (items, final type, final object)."""
    items = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not sock.poll(int(left * 1000) + 1):
            raise AssertionError("no end frame within %.0f s (%d items)" % (timeout, len(items)))
        fr = sock.recv_multipart()
        assert fr[0] == rid, fr[:2]
        if fr[1] == b"msg":
            items.append(fr[2:])
            continue
        return items, fr[1].decode(), json.loads(fr[2])


def test_non_reading_service_client_keeps_rss_bounded():
    """Two service clients that never read -- one asks for a replay of
    8000 messages of ~5 KB (40 MB), one for a snapshot of 3000 keys --
    cost the broker less than 2 x limits.send_queue_bytes (plus slack);
    meanwhile `heads` is answered; when they read at last, each gets its
    whole reply in order with its end frame. (Before: SNDHWM 100,000
    messages, so the broker queued all 40 MB.)"""
    budget = 4 * 1024 * 1024
    gw = Gateway(extra={"gateway": {"heartbeat_ms": 0, "max_data_bytes": 8192}},
                 start=False,
                 groups={"limits": {"send_queue_bytes": budget, "replay_batch": 20000,
                                    "service_rate": 1000, "service_burst": 1000}})
    ctx = zmq.Context()
    try:
        with gw:
            gw.plugins = [burst_plugin("energy.bulk", count=COUNT, pad_bytes=PAD,
                                       key_count=KEYS, interval_ms=0)]
            gw.write_config()
            gw.start()
            wait_for(lambda: "burst done" in gw.broker.log(), 90, "the burst journaled")
            pid = gw.broker.proc.pid
            # warm up: a client that reads takes both replies once, so the
            # service's journal page cache (16 MiB, journal.c) is full
            # before the baseline
            w = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            w.connect(gw.service)
            for rid, cmd, args in ((b"w1", b"replay", {"channel": "energy.bulk", "from": 1}),
                                   (b"w2", b"snapshot", {"subtree": "energy."})):
                w.send_multipart([rid, cmd, json.dumps(args).encode()])
                items, kind, obj = read_reply(w, rid, 60)
                assert kind == "end", obj
            w.close(0)
            # clients that do not read: a tiny receive queue and buffer
            slow = []
            for rid, cmd, args in ((b"r1", b"replay", {"channel": "energy.bulk", "from": 1}),
                                   (b"s1", b"snapshot", {"subtree": "energy."})):
                d = zmq_socket(ctx, zmq.DEALER, gw, "motie")
                d.setsockopt(zmq.RCVHWM, 1)
                d.setsockopt(zmq.RCVBUF, 4096)
                d.connect(gw.service)
                slow.append((d, rid, cmd, args))
            time.sleep(0.5)  # connected, so the baseline holds their handshakes
            base = peak = rss_kib(pid)
            for d, rid, cmd, args in slow:
                d.send_multipart([rid, cmd, json.dumps(args).encode()])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                peak = max(peak, rss_kib(pid))
                time.sleep(0.05)
            # another client is served meanwhile
            h = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            h.connect(gw.service)
            t0 = time.monotonic()
            h.send_multipart([b"h1", b"heads", b"{}"])
            items, kind, obj = read_reply(h, b"h1", 10)
            assert kind == "end" and obj["heads"].get("energy.bulk") == COUNT, obj
            assert time.monotonic() - t0 < 2.0, "heads took %.2f s" % (time.monotonic() - t0)
            growth = (peak - base) * 1024
            # plus the messages in flight in libzmq's and the kernel's
            # buffers and the allocator's slack
            slack = 16 * 1024 * 1024
            assert growth < 2 * budget + slack, (
                "broker RSS grew by %.1f MiB with two non-reading service clients "
                "(bound %.1f MiB)" % (growth / 2**20, (2 * budget + slack) / 2**20))
            # now they read: whole replies, in order, not cut
            (rd, _, _, _), (sd, _, _, _) = slow
            items, kind, obj = read_reply(rd, b"r1", 60)
            assert kind == "end", obj
            assert obj["count"] == COUNT and len(items) == COUNT, (obj, len(items))
            seqs = [jws_envelope(it[1])["seq"] for it in items]
            assert seqs == list(range(1, COUNT + 1)), "replay out of order or with gaps"
            assert obj["next"] == COUNT + 1 and obj["more"] is False, obj
            items, kind, obj = read_reply(sd, b"s1", 60)
            assert kind == "end", obj
            assert obj["count"] == KEYS and len(items) == KEYS, (obj, len(items))
            assert obj["heads"] == {"energy.bulk": COUNT}, obj["heads"]
            for d, _, _, _ in slow:
                d.close(0)
            h.close(0)
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    run_tests([test_non_reading_service_client_keeps_rss_bounded])
