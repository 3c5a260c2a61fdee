"""The journal: damage is detected and reported; a message whose signature
no longer verifies is never served.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_journal.py
"""
import json
import os
import sqlite3
import sys

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, Gateway, run_tests, wait_for  # noqa: E402


def ticker(name="t", interval_ms=10):
    return {
        "name": name,
        "path": os.path.join(BUILD, "tests", "plugins", "crash.so"),
        "sector": "energy",
        "channels": ["energy.test."],
        "settings": {"channel": "energy.test.%s" % name, "interval_ms": interval_ms},
    }


def journal(gw):
    return os.path.join(gw.tmp, "data", "journal.db")


def filled_gateway(min_messages=30):
    gw = Gateway(plugins=[ticker()])

    def count():
        db = sqlite3.connect(journal(gw))
        try:
            return db.execute("SELECT count(*) FROM messages").fetchone()[0]
        except sqlite3.Error:
            return 0
        finally:
            db.close()
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
        import base64
        body = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
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
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.curve_serverkey = open(os.path.join(gw.keys, "broker.public"), "rb").read().strip()
            s.curve_publickey = open(os.path.join(gw.keys, "motie.public"), "rb").read().strip()
            s.curve_secretkey = open(os.path.join(gw.keys, "motie.secret"), "rb").read().strip()
            s.connect(gw.service)
            s.send_multipart([b"1", b"replay", json.dumps({"channel": "energy.test.t", "from": 1}).encode()])
            items, final = [], None
            while final is None:
                assert s.poll(10000), "no reply"
                fr = s.recv_multipart()
                if fr[1] == b"msg":
                    items.append(fr)
                else:
                    final = fr
            # everything before the forged message is served, it is not
            assert len(items) == seq - 1, (len(items), seq)
            assert final[1] == b"error", final
            err = json.loads(final[2])
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
