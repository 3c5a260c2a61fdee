"""The journal: damage is detected and reported; a message whose signature
no longer verifies is never served.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_journal.py
"""
import base64
import json
import os
import sqlite3
import sys

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, crash_plugin, journal_query, jws_envelope,  # noqa: E402
                     run_tests, service_request, wait_for, zmq_socket)


def journal(gw):
    return os.path.join(gw.tmp, "data", "journal.db")


def filled_gateway(min_messages=30):
    gw = Gateway(plugins=[crash_plugin("t", interval_ms=10, grant="energy.test.")])

    def count():
        rows = journal_query(gw, "SELECT count(*) FROM messages", quiet=True)
        return rows[0][0] if rows else 0
    wait_for(lambda: count() >= min_messages, 20, "journal filled")
    assert gw.stop() == 0
    return gw


def start_fails(gw, needle):
    try:
        gw.start(timeout=20)
    except AssertionError as e:
        assert needle in str(e), str(e)
        assert journal(gw) in str(e), str(e)
        return str(e)
    raise AssertionError("broker started on a damaged journal")


def test_corrupted_journal_is_refused_with_its_name():
    gw = filled_gateway()
    with gw:
        path = journal(gw)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:          # scribble over the b-tree pages
            f.seek(size // 2)
            f.write(os.urandom(min(8192, size // 2)))
        msg = start_fails(gw, "journal")
        assert "damaged" in msg or "malformed" in msg or "integrity" in msg, msg


def test_torn_journal_is_refused():
    gw = filled_gateway()
    with gw:
        path = journal(gw)
        with open(path, "r+b") as f:          # a torn write: the file ends mid-page
            f.truncate(os.path.getsize(path) // 3 + 100)
        start_fails(gw, "journal")


def test_not_a_journal_is_refused():
    gw = Gateway(start=False)
    with gw:
        os.makedirs(os.path.join(gw.tmp, "data"), exist_ok=True)
        with open(journal(gw), "wb") as f:
            f.write(b"this is not a database\n" * 200)
        start_fails(gw, "journal")


def test_tampered_message_is_never_served():
    gw = filled_gateway()
    with gw:
        db = sqlite3.connect(journal(gw))
        seq, jws = db.execute("SELECT seq, jws FROM messages WHERE channel='energy.test.t'"
                              " ORDER BY seq LIMIT 1 OFFSET 5").fetchone()
        jws = bytes(jws)
        head, payload, sig = jws.split(b".")
        # change the payload (a different tick) but keep the old signature
        body = jws_envelope(jws)
        body["data"]["tick"] += 1000
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=")
        db.execute("UPDATE messages SET jws=? WHERE channel='energy.test.t' AND seq=?",
                   (head + b"." + forged + b"." + sig, seq))
        db.commit()
        db.close()
        gw.plugins = []
        gw.write_config()
        gw.start()
        ctx = zmq.Context()
        try:
            s = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            s.connect(gw.service)
            items, kind, err = service_request(s, b"1", b"replay",
                                               {"channel": "energy.test.t", "from": 1})
            # everything before the forged message is served, it is not
            assert len(items) == seq - 1, (len(items), seq)
            assert [jws_envelope(jws)["seq"] for _, jws in items] == list(range(1, seq))
            assert kind == "error", (kind, err)
            assert err["code"] == 500 and err["error"] == "corrupt", err
            assert ("seq %d" % seq) in err["text"], err
            wait_for(lambda: "fails verification" in gw.broker.log(), 5, "log line")
        finally:
            ctx.destroy(linger=0)


if __name__ == "__main__":
    run_tests([
        test_corrupted_journal_is_refused_with_its_name,
        test_torn_journal_is_refused,
        test_not_a_journal_is_refused,
        test_tampered_message_is_never_served,
    ])
