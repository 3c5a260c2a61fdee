"""The journal: damage is detected and reported; a message whose signature
no longer verifies is never served; a journal of the previous layout is
converted and keeps serving.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_journal.py
"""
import base64
import json
import os
import sqlite3
import sys

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, burst_plugin, crash_plugin, journal_query,  # noqa: E402
                     jws_envelope, run_tests, service_request, wait_for,
                     zmq_socket)


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
        db.execute("UPDATE msg SET jws=? WHERE ch=(SELECT id FROM channels"
                   " WHERE name='energy.test.t') AND seq=?",
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


# The layout-1 schema exactly as sectorcast wrote it before layout 2
# (core/broker/journal.c up to commit 10f5d7c).
LAYOUT1 = """
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS channels(name TEXT PRIMARY KEY,
 head INTEGER NOT NULL, low INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS messages(channel TEXT NOT NULL,
 seq INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT,
 ts TEXT NOT NULL, jws BLOB NOT NULL, kid TEXT,
 PRIMARY KEY(channel, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_key ON messages(channel, key,
 seq);
CREATE TABLE IF NOT EXISTS plugin_state(plugin TEXT NOT NULL,
 key TEXT NOT NULL, value TEXT NOT NULL,
 PRIMARY KEY(plugin, key)) WITHOUT ROWID;
"""


def rewrite_as_layout1(path):
    """Replace the journal at `path` by a layout-1 file holding the same
    epoch, heads, messages (the signed bytes) and plugin state."""
    old = path + ".layout1"
    db = sqlite3.connect(old)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(LAYOUT1)
    db.execute("ATTACH ? AS src", (path,))
    db.executescript("""
        INSERT INTO meta SELECT k, v FROM src.meta WHERE k='epoch';
        INSERT INTO meta VALUES('schema', '1');
        INSERT INTO channels SELECT name, head, low FROM src.channels;
        INSERT INTO messages SELECT channel, seq, kind, key, ts, jws, kid
          FROM src.messages;
        INSERT INTO plugin_state SELECT plugin, key, value FROM src.plugin_state;
    """)
    db.commit()
    db.execute("DETACH src")
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.rename(old, path)
    if os.path.exists(old + "-wal"):
        os.rename(old + "-wal", path + "-wal")
    os.chmod(path, 0o644)


def test_layout1_journal_is_converted_and_serves_replay():
    ch = "energy.test.old"
    gw = Gateway(plugins=[burst_plugin(channel=ch, count=300, key_count=7)])
    with gw:
        wait_for(lambda: journal_query(gw, "SELECT head FROM channels WHERE name=?",
                                       (ch,), quiet=True) == [(300,)], 30, "burst journaled")
        assert gw.stop() == 0
        path = journal(gw)
        # a new journal has 8 KiB pages; a layout-1 file written with 4 KiB
        # keeps them after the conversion
        assert journal_query(gw, "PRAGMA page_size") == [(8192,)]
        before = journal_query(gw, "SELECT seq, jws FROM messages WHERE channel=?"
                                   " ORDER BY seq", (ch,))
        epoch = journal_query(gw, "SELECT v FROM meta WHERE k='epoch'")[0][0]
        rewrite_as_layout1(path)
        assert journal_query(gw, "SELECT type FROM sqlite_master WHERE name='messages'") \
            == [("table",)]

        gw.plugins = []
        gw.write_config()
        gw.start()
        log = gw.broker.log()
        assert "from layout 1 to layout 2 (300 message(s))" in log, log
        assert journal_query(gw, "PRAGMA page_size") == [(4096,)]
        assert journal_query(gw, "SELECT type FROM sqlite_master WHERE name='messages'") \
            == [("view",)]
        assert os.stat(path).st_mode & 0o777 == 0o600, oct(os.stat(path).st_mode)
        ctx = zmq.Context()
        try:
            s = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            s.connect(gw.service)
            items, kind, end = service_request(s, b"1", b"replay",
                                               {"channel": ch, "from": 1, "epoch": epoch})
            assert kind == "end", (kind, end)
            assert [bytes(j) for _, j in items] == [bytes(j) for _, j in before]
            assert end["head"] == 300 and end["epoch"] == epoch, end
            items, kind, end = service_request(s, b"2", b"snapshot",
                                               {"subtree": "energy.test."})
            assert kind == "end", (kind, end)
            seqs = sorted(jws_envelope(j)["seq"] for _, j in items)
            assert seqs == list(range(294, 301)), seqs   # the latest of each of 7 keys
            assert end["heads"] == {ch: 300}, end
        finally:
            ctx.destroy(linger=0)
        # and it keeps journaling where it stopped
        assert gw.stop() == 0
        # (the plugin resumes from its durable state, converted too: 300 done)
        gw.plugins = [burst_plugin(channel=ch, count=305, key_count=7)]
        gw.write_config()
        gw.start()
        wait_for(lambda: journal_query(gw, "SELECT head FROM channels WHERE name=?",
                                       (ch,), quiet=True) == [(305,)], 30, "new messages")
        assert "layout 1" not in gw.broker.log()


if __name__ == "__main__":
    run_tests([
        test_corrupted_journal_is_refused_with_its_name,
        test_torn_journal_is_refused,
        test_not_a_journal_is_refused,
        test_tampered_message_is_never_served,
        test_layout1_journal_is_converted_and_serves_replay,
    ])
