"""A sink's max_inflight is honoured by the broker: a sink plugin that
declares max_inflight N in its sc_sink_def_t is handed at most N messages
it has not acknowledged, in a thread of the broker and in a child process
alike; the rest wait in the broker and are delivered, in order and once
each, as it acknowledges.

tests/plugins/holdsink.so logs every delivery ("delivered CHANNEL SEQ (N
open)") and "window overrun" if it is ever handed more than N; it
acknowledges only while its ack file exists. tests/plugins/burst.so
publishes the messages.
"""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, Gateway, burst_plugin, run_tests, wait_for  # noqa: E402

CHANNEL = "energy.test.window"
COUNT = 40
WINDOW = 3


def holdsink(ack_file, isolation=None):
    p = {"name": "hold", "path": os.path.join(BUILD, "tests", "plugins", "holdsink.so"),
         "receives": ["energy."],
         "settings": {"max_inflight": WINDOW, "ack_file": ack_file, "tick_ms": 20}}
    if isolation:
        p["isolation"] = isolation
    return p


def delivered(gw):
    return [int(s) for s in re.findall(r"delivered %s (\d+) \(" % re.escape(CHANNEL),
                                       gw.broker.log())]


def held_then_released(isolation):
    tmp = tempfile.mkdtemp(prefix="sc-it-")
    ack_file = os.path.join(tmp, "ack-now")  # created when the test says
    with Gateway(plugins=[burst_plugin(CHANNEL, count=COUNT, key_count=1),
                          holdsink(ack_file, isolation)],
                 extra={"log_level": "info"}, tmp=tmp) as gw:
        wait_for(lambda: "burst done: %d message(s)" % COUNT in gw.broker.log(), 30,
                 "the burst published")
        wait_for(lambda: len(delivered(gw)) >= WINDOW, 30, "the first window delivered")
        # nothing is acknowledged: the rest waits in the broker
        time.sleep(1.5)
        assert delivered(gw) == list(range(1, WINDOW + 1)), delivered(gw)
        with open(ack_file, "w"):
            pass
        wait_for(lambda: len(delivered(gw)) >= COUNT, 30, "every message delivered")
        time.sleep(0.3)
        log = gw.broker.log()
        assert delivered(gw) == list(range(1, COUNT + 1)), delivered(gw)
        assert "window overrun" not in log, log[-3000:]
        # never more than the window open at once
        opens = [int(n) for n in re.findall(r"delivered %s \d+ \((\d+) open\)"
                                            % re.escape(CHANNEL), log)]
        assert max(opens) <= WINDOW, opens
        assert gw.stop() == 0


def test_window_held_in_a_thread():
    """In a thread of the broker: 3 delivered, the rest held until acks."""
    held_then_released(None)


def test_window_held_in_a_child_process():
    """With isolation = "process": the child's host holds them the same."""
    held_then_released("process")


if __name__ == "__main__":
    run_tests([test_window_held_in_a_thread, test_window_held_in_a_child_process])
