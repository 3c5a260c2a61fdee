"""Sink plugins and the NATS JetStream bridge, against real servers.

A 3-node nats-server cluster with JetStream runs on loopback (free ports,
its own temp dirs; only our own processes are ever signalled). The bridge
(plugins/nats_bridge) creates an R3 stream; sectorcast-jetstream reads it
back and verifies every message with the gateway's JWKS.
"""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request

import harness
from harness import Gateway, Process, burst_plugin, free_port, wait_for

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
PREFIX = "sc"


class NatsCluster:
    """Three nats-server processes with JetStream, clustered on loopback."""

    def __init__(self, tmp, n=3):
        self.tmp = tmp
        self.n = n
        self.ports = [free_port() for _ in range(n)]
        self.cports = [free_port() for _ in range(n)]
        self.hports = [free_port() for _ in range(n)]
        self.procs = [None] * n
        try:
            for i in range(n):
                self.start(i)
            self.wait_healthy()
        except BaseException:
            self.close()  # never leave a server running
            raise

    def conf(self, i):
        routes = ", ".join("nats-route://127.0.0.1:%d" % self.cports[k]
                           for k in range(self.n) if k != i)
        path = os.path.join(self.tmp, "n%d.conf" % i)
        with open(path, "w") as f:
            f.write('server_name: n%d\nlisten: "127.0.0.1:%d"\nhttp: "127.0.0.1:%d"\n'
                    'jetstream { store_dir: "%s"; max_memory_store: 64MB; '
                    'max_file_store: 1GB }\n'
                    % (i, self.ports[i], self.hports[i],
                       os.path.join(self.tmp, "js%d" % i)))
            if self.n > 1:  # a lone node is not a cluster (JetStream needs a quorum)
                f.write('cluster { name: sctest; listen: "127.0.0.1:%d"; routes: [ %s ] }\n'
                        % (self.cports[i], routes))
        return path

    def start(self, i):
        self.procs[i] = Process([NATS_SERVER, "-c", self.conf(i)],
                                os.path.join(self.tmp, "nats%d-%d.log" % (i, time.monotonic_ns())))

    def urls(self):
        return ["nats://127.0.0.1:%d" % p for p in self.ports]

    def http(self, i, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.hports[i], path),
                                        timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except Exception as e:  # not up (yet)
            return 0, str(e)

    def wait_healthy(self, timeout=60):
        for i in range(self.n):
            if self.procs[i] and self.procs[i].alive():
                wait_for(lambda: self.http(i, "/healthz")[0] == 200, timeout,
                         "nats node %d healthy" % i, interval=0.2)

    def stream_msgs(self, stream):
        """Messages in `stream` as one live node reports it (-1: none answers)."""
        for i in range(self.n):
            if not (self.procs[i] and self.procs[i].alive()):
                continue
            code, body = self.http(i, "/jsz?streams=true")
            if code != 200:
                continue
            for acc in json.loads(body).get("account_details") or []:
                for st in acc.get("stream_detail") or []:
                    if st.get("name") == stream:
                        return st["state"]["messages"]
        return -1

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs[i]
        if p and p.alive():
            p.proc.send_signal(sig)
            p.proc.wait(timeout=20)

    def close(self):
        for p in self.procs:
            if p:
                try:
                    p.kill()
                except Exception:
                    pass


def bridge_plugin(cluster, stream, receives=("energy.",), name="bridge", **settings):
    s = {"servers": cluster.urls(), "subject_prefix": PREFIX, "stream": stream,
         "replicas": 3, "publish_timeout_ms": 2000}
    s.update(settings)
    return {"name": name,
            "path": os.path.join(harness.PLUGINS, "nats_bridge.so"),
            "receives": list(receives),
            "settings": s}


def read_stream(gw, cluster, stream, timeout=150):
    """sectorcast-jetstream over the whole stream: (envelopes, summary line)."""
    argv = [os.path.join(harness.BIN, "sectorcast-jetstream"), "-s", ",".join(cluster.urls()),
            "-j", gw.jwks, "--stream", stream, "--prefix", PREFIX, "--meta", "-t", "10000"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "reader exit %d: %s" % (r.returncode, r.stderr[-3000:])
    lines = [json.loads(l) for l in r.stdout.split("\n") if l.strip()]
    return lines, r.stderr.strip().split("\n")[-1]


def journal_rows(gw):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(gw.tmp, "data", "journal.db"), uri=True)
    try:
        return db.execute("SELECT channel, seq FROM messages ORDER BY channel, seq").fetchall()
    finally:
        db.close()


def acked(gw, instance="bridge"):
    path = os.path.join(gw.tmp, "data", "sinks.db")
    if not os.path.exists(path):
        return {}
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return dict(db.execute("SELECT channel, acked FROM cursors WHERE instance=?",
                               (instance,)).fetchall())
    except sqlite3.Error:
        return {}
    finally:
        db.close()


def check_exactly_once(lines, summary, rows, subtree="energy."):
    """Every journal message under subtree is in the stream exactly once, in
    seq order per channel, verified (the reader refuses what does not
    verify, and reports duplicates and gaps)."""
    assert " 0 refused, 0 duplicate, 0 gap" in summary, summary
    want = [(c, s) for c, s in rows if c.startswith(subtree)]
    got = [(l["envelope"]["channel"], l["envelope"]["seq"]) for l in lines]
    assert len(got) == len(set(got)), "duplicates in the stream"
    assert sorted(got) == want, "stream != journal: %d vs %d messages, missing %s" % (
        len(got), len(want), sorted(set(want) - set(got))[:10])
    per = {}
    for c, s in got:
        assert s == per.get(c, 0) + 1, "%s: seq %d after %d" % (c, s, per.get(c, 0))
        per[c] = s
    for l in lines:
        assert l["subject"] == "%s.%s" % (PREFIX, l["envelope"]["channel"])
    return per


def test_burst_with_node_and_broker_kill():
    """10,000 messages; one NATS node kill -9 midway, the broker kill -9 and
    restarted on its journal; the stream then holds every journal message
    exactly once, in order, verified; nothing of semis. (not received)."""
    tmp = tempfile.mkdtemp(prefix="sc-nats-")
    cluster = NatsCluster(tmp)
    try:
        plugins = [burst_plugin("energy.test.a", count=6000, interval_ms=0, name="burst_a"),
                   burst_plugin("energy.test.b", count=4000, interval_ms=0, name="burst_b"),
                   burst_plugin("semis.test", count=300, interval_ms=0, name="burst_s",
                                sector="semis_ai"),
                   bridge_plugin(cluster, "SCBURST")]
        with Gateway(plugins=plugins, extra={"log_level": "info"}) as gw:
            wait_for(lambda: sum(acked(gw).values()) >= 2500, 60, "2500 bridged", 0.1)
            cluster.kill(1)  # kill -9 one node midway
            wait_for(lambda: sum(acked(gw).values()) >= 5000, 60, "5000 bridged", 0.1)
            gw.broker.proc.send_signal(signal.SIGKILL)
            gw.broker.proc.wait(timeout=10)
            gw.start()
            # the bursts complete (the plugin's durable count) and all is bridged
            def done():
                rows = journal_rows(gw)
                heads = {}
                for c, s in rows:
                    heads[c] = max(heads.get(c, 0), s)
                a = acked(gw)
                n = sum(1 for c, _ in rows if c.startswith("energy."))
                return n >= 10000 and all(a.get(c, 0) >= h for c, h in heads.items()
                                          if c.startswith("energy.")) and heads
            wait_for(done, 90, "all 10,000 bridged", 0.2)
            rows = journal_rows(gw)
            assert "semis.test" not in acked(gw), "a sink granted energy. got a semis. cursor"
            lines, summary = read_stream(gw, cluster, "SCBURST")
            per = check_exactly_once(lines, summary, rows)
            ns = set()
            for l in lines:
                ns.add((l["envelope"]["channel"], l["envelope"]["data"]["n"]))
            assert all(("energy.test.a", n) in ns for n in range(1, 6001))
            assert all(("energy.test.b", n) in ns for n in range(1, 4001))
            assert not [l for l in lines if l["envelope"]["channel"].startswith("semis.")]
            assert set(per) == {"energy.test.a", "energy.test.b"}
            log = gw.broker.log()
            assert "lost" not in log, log[-2000:]
    finally:
        cluster.close()
        if not os.environ.get("SC_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def test_downstream_down_then_back():
    """All NATS nodes stopped while messages are published: subscribers on
    the XPUB socket get them without delay; once NATS is back, everything
    published meanwhile arrives in the stream, once, in order."""
    tmp = tempfile.mkdtemp(prefix="sc-nats-")
    cluster = NatsCluster(tmp)
    try:
        plugins = [burst_plugin("energy.test.d", count=400, interval_ms=5, name="burst_d",
                                start_delay_ms=8000),
                   bridge_plugin(cluster, "SCDOWN")]
        with Gateway(plugins=plugins, extra={"log_level": "info"}) as gw:
            wait_for(lambda: "connected to NATS" in gw.broker.log(), 30, "bridge connected")
            # the outage under test comes after the bridge made its stream:
            # an R3 stream cannot be placed before the JetStream cluster
            # has formed, nor while a freshly restarted cluster re-forms
            wait_for(lambda: cluster.stream_msgs("SCDOWN") >= 0, 60,
                     "stream SCDOWN created", 0.2)
            sub = gw.subscriber("motie", ["energy.test."], extra_args=["-n", "400"])
            gw.wait_subscribed("motie", "energy.test.")
            for i in range(3):
                cluster.kill(i, signal.SIGTERM)
            t0 = time.monotonic()
            # the burst runs for ~2 s once it starts: the subscriber has it all
            # long before NATS is back, while the bridge is stuck
            wait_for(lambda: len(sub.lines()) >= 400, 30, "subscriber got 400", 0.1)
            elapsed = time.monotonic() - t0
            assert elapsed < 25, "subscriber took %.1fs with NATS down" % elapsed
            assert acked(gw).get("energy.test.d", 0) < 400
            # a reload that changes the bridge restarts it while NATS is
            # down: it stops at once and resumes from its cursor
            gw.plugins[1]["settings"]["publish_timeout_ms"] = 1500
            gw.write_config()
            gw.broker.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: gw.broker.log().count("bridging to JetStream stream") >= 2,
                     30, "bridge restarted by the reload")
            assert "did not stop within" not in gw.broker.log()
            for i in range(3):
                cluster.start(i)
            cluster.wait_healthy()
            wait_for(lambda: acked(gw).get("energy.test.d", 0) >= 400, 60,
                     "all 400 bridged after NATS is back", 0.2)
            lines, summary = read_stream(gw, cluster, "SCDOWN")
            per = check_exactly_once(lines, summary, journal_rows(gw))
            assert per == {"energy.test.d": 400}
            assert "disconnected from NATS" in gw.broker.log()
        # an existing stream that differs from the settings is a clear
        # error, and nothing is published into it
        with Gateway(plugins=[bridge_plugin(cluster, "SCDOWN", replicas=1),
                              burst_plugin("energy.test.m", count=5, name="burst_m")],
                     extra={"log_level": "info"}) as gw2:
            needle = ("existing stream 'SCDOWN' does not match the settings: "
                      "it has 3 replica(s), settings say 1")
            wait_for(lambda: needle in gw2.broker.log(), 30, "stream mismatch error")
            assert cluster.stream_msgs("SCDOWN") == 400
    finally:
        cluster.close()
        if not os.environ.get("SC_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def test_retention_gap_is_reported_to_the_sink():
    """Messages pruned by retention before the sink acknowledged them are
    logged by the broker and passed to the sink's lost() (the bridge says
    the stream has a gap there); delivery goes on after them. NATS is not
    reachable here, so nothing is acknowledged."""
    dead = "nats://127.0.0.1:%d" % free_port()
    bridge = {"name": "bridge", "path": os.path.join(harness.PLUGINS, "nats_bridge.so"),
              "receives": ["energy."],
              "settings": {"servers": [dead], "subject_prefix": PREFIX, "stream": "SCGAP"}}
    with Gateway(plugins=[burst_plugin("energy.test.r", count=50, key_count=1, name="burst_r"),
                          bridge],
                 groups={"retention": [{"subtree": "energy.", "max_messages": 5}]},
                 extra={"log_level": "info"}) as gw:
        wait_for(lambda: "new cursor, starting at seq 1" in gw.broker.log(), 30, "sink cursor")
        wait_for(lambda: "energy.test.r" in acked(gw), 10, "cursor written")
        # the whole burst journaled before the stop (a loaded machine may
        # still be signing it when the cursor is first written)
        wait_for(lambda: sum(1 for c, _ in journal_rows(gw) if c == "energy.test.r") >= 50,
                 30, "50 journaled")
        assert gw.stop() == 0
        gw.start()  # retention runs at start: keeps 46..50
        wait_for(lambda: "removed by retention before they were delivered" in gw.broker.log(),
                 30, "gap logged by the broker")
        log = gw.broker.log()
        assert "sink: energy.test.r: seq 1..45 removed by retention" in log, log[-3000:]
        wait_for(lambda: "energy.test.r seq 1..45 (epoch" in gw.broker.log(), 10,
                 "gap passed to the plugin's lost()")
        # the cursor moved past the gap (written by the feeder thread)
        wait_for(lambda: acked(gw).get("energy.test.r") == 45, 10, "cursor at 45")
        assert gw.stop() == 0  # a clean stop (ASan: nothing of nats.c leaks)


def child_pids(gw, name="bridge"):
    return [int(p) for p in re.findall(r"\[%s\] plugin process started \(pid (\d+)\)" % name,
                                       gw.broker.log())]


def test_isolated_bridge_resumes_after_kill():
    """The bridge with isolation = "process": the core relays the sink
    messages to the child over its own channel (frames), the child's acks
    move the cursor; after a kill -9 of the child it is restarted and
    resumes from its cursor: the stream holds every message once, in
    order, verified."""
    tmp = tempfile.mkdtemp(prefix="sc-nats-")
    cluster = NatsCluster(tmp, n=1)
    try:
        # a small window in the bridge: it refuses (SC_ERR_LIMIT -> SINK_NACK)
        # and is offered the same message again, in order
        bridge = bridge_plugin(cluster, "SCPROC", replicas=1, max_inflight=16)
        bridge["isolation"] = "process"
        plugins = [burst_plugin("energy.test.p", count=3000, interval_ms=1, name="burst_p"),
                   bridge]
        with Gateway(plugins=plugins, extra={"log_level": "info"}) as gw:
            wait_for(lambda: acked(gw).get("energy.test.p", 0) >= 600, 60,
                     "600 bridged by the child", 0.1)
            pids = child_pids(gw)
            assert len(pids) == 1, pids
            os.kill(pids[0], signal.SIGKILL)
            at_kill = acked(gw).get("energy.test.p", 0)
            assert at_kill < 3000, "the child was killed after it had everything"
            wait_for(lambda: len(child_pids(gw)) >= 2, 30, "child restarted")
            wait_for(lambda: acked(gw).get("energy.test.p", 0) >= 3000, 90,
                     "all 3000 bridged", 0.2)
            lines, summary = read_stream(gw, cluster, "SCPROC")
            per = check_exactly_once(lines, summary, journal_rows(gw))
            assert per == {"energy.test.p": 3000}
            log = gw.broker.log()
            assert "is ignored with isolation" not in log
            assert "killed by signal 9" in log, log[-3000:]
            # the new child started from the durable cursor, not from seq 1
            # and not past it (exactly once in the stream: checked above)
            assert at_kill >= 600
    finally:
        cluster.close()
        if not os.environ.get("SC_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def test_new_epoch_is_reported_to_an_isolated_sink():
    """The journal is replaced (a new epoch) while a sink's cursor points
    into the old one: the broker logs it, and the plugin's lost() gets the
    old epoch with last 0 -- here the bridge in a child process (the notice
    travels as a SINK_LOST frame), before anything of the new epoch. NATS
    is not reachable, so nothing is acknowledged."""
    dead = "nats://127.0.0.1:%d" % free_port()
    bridge = {"name": "bridge", "path": os.path.join(harness.PLUGINS, "nats_bridge.so"),
              "receives": ["energy."], "isolation": "process",
              "settings": {"servers": [dead], "subject_prefix": PREFIX, "stream": "SCEPOCH"}}
    with Gateway(plugins=[burst_plugin("energy.test.e", count=5, name="burst_e"), bridge],
                 extra={"log_level": "info"}) as gw:
        wait_for(lambda: "energy.test.e" in acked(gw), 30, "cursor written")
        m = re.search(r"epoch ([0-9a-f]{32})", gw.broker.log())
        assert m, gw.broker.log()[-2000:]
        old = m.group(1)
        assert gw.stop() == 0
        for ext in ("", "-wal", "-shm"):
            path = os.path.join(gw.tmp, "data", "journal.db" + ext)
            if os.path.exists(path):
                os.unlink(path)
        gw.start()
        needle = "energy.test.e: messages after seq 0 of the old epoch %s never " \
                 "reached JetStream" % old
        wait_for(lambda: needle in gw.broker.log(), 30, "old epoch passed to lost()")
        log = gw.broker.log()
        assert "the journal started a new epoch" in log, log[-3000:]
        assert "was %s" % old in log
        assert gw.stop() == 0


def test_receives_outside_sectors_fails_check():
    """`receives` naming a subtree outside every sector fails --check with
    FILE:LINE; inside the sectors it passes."""
    bad = {"name": "bridge", "path": os.path.join(harness.PLUGINS, "nats_bridge.so"),
           "receives": ["energy.", "finance."],
           "settings": {"servers": ["nats://127.0.0.1:1"]}}
    with Gateway(plugins=[bad], start=False) as gw:
        r = gw.check()
        assert r.returncode != 0, r.stdout + r.stderr
        out = r.stdout + r.stderr
        with open(gw.config) as f:
            line = [i + 1 for i, l in enumerate(f.read().split("\n")) if "finance." in l][0]
        assert "%s:%d:" % (gw.config, line) in out, out
        assert "receives 'finance.'" in out and "outside every sector" in out, out
        good = dict(bad, receives=["energy.", "semis."])
        gw.plugins = [good]
        gw.write_config()
        r = gw.check()
        assert r.returncode == 0, r.stdout + r.stderr


if __name__ == "__main__":
    harness.run_tests([
        test_receives_outside_sectors_fails_check,
        test_retention_gap_is_reported_to_the_sink,
        test_isolated_bridge_resumes_after_kill,
        test_new_epoch_is_reported_to_an_isolated_sink,
        test_burst_with_node_and_broker_kill,
        test_downstream_down_then_back,
    ])
