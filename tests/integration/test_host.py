"""The one plugin host seen from outside: an ABI 1 plugin keeps loading, a
plugin needing a capability the broker lacks fails alone, a reload with a
bad setting keeps the plugin running, and process isolation isolates (a
crashing constructor, a hung child, a forged sender, an edited config).

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_host.py
"""
import os
import re
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, Gateway, crash_plugin, journal_query,  # noqa: E402
                     run_tests, wait_for)

import zmq  # noqa: E402


def count(sub, channel):
    return len([l for l in sub.lines() if '"channel":"%s"' % channel in l])


def test_plugin(name, so, grant, **settings):
    return {
        "name": name,
        "path": os.path.join(BUILD, "tests", "plugins", so),
        "sector": "energy",
        "channels": [grant + "."],
        "settings": dict(settings),
    }


def assert_contiguous(envs, what):
    seqs = [e["seq"] for e in envs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "%s: seq gap %s" % (what, seqs)


def test_abi1_plugin_loads_and_publishes():
    """A plugin built from the frozen ABI 1 header (no size fields, the old
    settings layout) loads in this broker and publishes."""
    p = test_plugin("old", "abi1.so", "energy.test.old", channel="energy.test.old",
                    interval_ms=50)
    gw = Gateway(plugins=[p])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.old") >= 3, 20, "ABI 1 plugin publishing")
        log = gw.broker.log()
        assert "ABI 1 plugin running on a host of ABI 2" in log, log
        assert "ABI 1)" in log, log
        assert gw.stop() == 0
        sub.stop()
        envs = sub.envelopes()
        assert all(e["kind"] == "compat.tick" and e["data"]["abi"] == 1 for e in envs), envs
        ns = [e["data"]["n"] for e in envs]
        assert ns == list(range(ns[0], ns[0] + len(ns))), ns


def test_missing_capability_fails_alone():
    """needcap asks for a capability this broker does not offer: its init
    fails with a clear message, and the plugin next to it runs."""
    p = test_plugin("needcap", "needcap.so", "energy.test.needcap")
    gw = Gateway(plugins=[p, crash_plugin("a")])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.a") >= 5, 20, "the other plugin publishing")
        log = gw.broker.log()
        assert "[needcap] capability 99 is not supported by this host" in log, log
        assert ("[needcap] needcap needs capability 99, which this broker does not offer "
                "(not supported by this host); not starting") in log, log
        assert "[needcap] plugin init failed: not supported by this host (-11)" in log, log
        assert gw.stop() == 0


def test_sighup_bad_setting_keeps_plugin_on_old_settings():
    """A reload whose new settings for one plugin fail the checks leaves
    that plugin running on its old settings (no gap for a subscriber) and
    the log names the problem at its line."""
    gw = Gateway(plugins=[crash_plugin("a"), crash_plugin("b")])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.b") > 10, 20, "b publishing")
        gw.plugins[1]["settings"]["interval_ms"] = "fast"
        gw.write_config()
        gw.broker.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in gw.broker.log(), 20, "reload refused")
        log = gw.broker.log()
        assert re.search(r"sectorcast\.conf:\d+: plugin 'b': setting 'interval_ms': ", log), log
        n = count(sub, "energy.test.b")
        wait_for(lambda: count(sub, "energy.test.b") > n + 10, 20, "b still publishing")
        assert "[b] reload:" not in gw.broker.log()
        assert gw.stop() == 0
        sub.stop()
        envs = [e for e in sub.envelopes() if e["channel"] == "energy.test.b"]
        assert_contiguous(envs, "b")
        gaps = [y["data"]["tick"] - x["data"]["tick"] for x, y in zip(envs, envs[1:])]
        assert set(gaps) == {1}, gaps


def reload_into_failing_init(gw, timeout):
    """Plugin 'b' publishing; a reload gives it settings that pass the
    checks but make its init() fail: the log says so, the plugin is
    restarted on its previous settings before "reload done" and publishes
    again. Returns the subscriber."""
    sub = gw.subscriber("motie", ["energy.test."])
    gw.wait_subscribed("motie", "energy.test.")
    wait_for(lambda: count(sub, "energy.test.b") > 10, 20, "b publishing")
    gw.plugins[1]["settings"]["interval_ms"] = 0
    gw.write_config()
    gw.broker.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload done" in gw.broker.log(), timeout, "reload done")
    log = gw.broker.log()
    assert "[b] plugin init failed" in log, log
    assert ("[b] reload: the new instance did not start; restarting the plugin on "
            "its previous configuration") in log, log
    assert "reload done: 0 plugin(s) started or restarted, 1 kept, 1 failed" in log, log
    assert log.index("restarting the plugin on its previous") < log.index("reload done")
    n = count(sub, "energy.test.b")
    wait_for(lambda: count(sub, "energy.test.b") > n + 10, 20, "b publishing again")
    return sub


def test_sighup_new_instance_failing_init_restarts_previous():
    """A reload whose new settings pass the checks but make init() fail
    (crash.so: interval_ms 0 cannot make a repeating timer): the plugin is
    restarted on its previous settings and keeps publishing; "reload done"
    comes after, with what was started, kept and failed."""
    gw = Gateway(plugins=[crash_plugin("a"), crash_plugin("b")])
    with gw:
        sub = reload_into_failing_init(gw, 20)
        # a second reload back to good settings frees the kept config
        gw.plugins[1]["settings"]["interval_ms"] = 25
        gw.write_config()
        gw.broker.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gw.broker.log().count("reload done") >= 2, 20, "second reload")
        assert "reload done: 1 plugin(s) started or restarted, 1 kept, 0 failed" in \
            gw.broker.log(), gw.broker.log()
        assert gw.stop() == 0
        sub.stop()
        envs = [e for e in sub.envelopes() if e["channel"] == "energy.test.b"]
        assert_contiguous(envs, "b")
        ticks = [e["data"]["tick"] for e in envs]
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks


def test_sighup_isolated_new_instance_failing_init_restarts_previous():
    """The same with isolation = "process": the new child reports that its
    init() failed (over its start-report pipe) and exits; the supervisor
    restarts the child on the previous entry (no crash loop on the new
    settings) and the reload reports it as failed."""
    gw = Gateway(plugins=[crash_plugin("a"),
                          crash_plugin("b", interval_ms=30, isolation="process")])
    with gw:
        sub = reload_into_failing_init(gw, 30)
        time.sleep(1.5)
        log = gw.broker.log()
        # the failed child was reaped by the reload, not restarted as a crash
        after = log[log.index("reload done"):]
        assert "restarting in" not in after, after
        assert gw.stop() == 0
        sub.stop()
        envs = [e for e in sub.envelopes() if e["channel"] == "energy.test.b"]
        assert_contiguous(envs, "b")
        # the plugin continues from its durable tick count: no tick is
        # skipped (a stop between a publish and its own state write may
        # repeat one: crash.so's publish and state write are two calls)
        ticks = [e["data"]["tick"] for e in envs]
        steps = [y - x for x, y in zip(ticks, ticks[1:])]
        assert set(steps) <= {0, 1} and steps.count(0) <= 1, ticks


def test_constructor_crash_takes_only_its_child():
    """A process-isolated plugin whose constructor crashes: never loaded by
    the broker (start, reload check), its child dies and is restarted with
    growing backoff, the broker and the other plugin keep running."""
    bad = test_plugin("boom", "ctor_crash.so", "energy.test.boom")
    bad["isolation"] = "process"
    gw = Gateway(plugins=[bad, crash_plugin("a")])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        died = lambda: re.findall(r"\[boom\] plugin process \d+ (?:killed by signal 11|exited "
                                  r"with status 1)[^;]*; restarting in (\d+) ms",
                                  gw.broker.log())
        wait_for(lambda: len(died()) >= 3, 30, "three crashes of the child")
        delays = [int(d) for d in died()]
        assert delays[0] < delays[1] < delays[2], delays
        # a reload checks the isolated plugin in a child too: the broker survives
        gw.broker.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in gw.broker.log(), 30, "reload refused")
        # a plain build dies of SIGSEGV; under ASan the sanitizer reports
        # the fault and the child exits with status 1
        log = gw.broker.log()
        assert ("plugin 'boom': crashed while being loaded in its child process" in log or
                "plugin 'boom': refused by its child process (status 1)" in log), log
        n = count(sub, "energy.test.a")
        wait_for(lambda: count(sub, "energy.test.a") > n + 10, 20, "a still publishing")
        assert gw.broker.alive()
        assert gw.stop() == 0


def started_pids(gw, name):
    return [int(p) for p in re.findall(r"\[%s\] plugin process started \(pid (\d+)\)" % name,
                                       gw.broker.log())]


def test_hung_child_is_killed_and_restarted():
    """A child that stops answering the liveness check (SIGSTOP) is killed
    and restarted; its ticks continue."""
    gw = Gateway(plugins=[crash_plugin("c", interval_ms=50, isolation="process")])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.c") >= 5, 20, "c publishing")
        pid = started_pids(gw, "c")[0]
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: "did not answer the liveness check" in gw.broker.log(), 20,
                 "liveness failure")
        wait_for(lambda: len(started_pids(gw, "c")) >= 2, 20, "restart")
        n = count(sub, "energy.test.c")
        wait_for(lambda: count(sub, "energy.test.c") > n + 5, 20, "c publishing again")
        assert gw.stop() == 0
        sub.stop()
        envs = [e for e in sub.envelopes() if e["channel"] == "energy.test.c"]
        assert_contiguous(envs, "c")
        assert len({e["data"]["pid"] for e in envs}) >= 2


def encode_frame(ftype, *fields):
    b = b"F" + ftype
    for f in fields:
        b += b"\xff\xff\xff\xff" if f is None else struct.pack(">I", len(f)) + f
    return b


def test_forged_sender_is_refused():
    """A process that connects to the children's socket and claims to be
    plugin 'c' (its name as routing id, or no credential at all) is
    refused: nothing it sends is journaled, the log says why."""
    gw = Gateway(plugins=[crash_plugin("c", interval_ms=50, isolation="process")])
    with gw:
        wait_for(lambda: started_pids(gw, "c"), 20, "child started")
        path = os.path.join(gw.tmp, "data", "run", "plugins.sock")
        assert os.path.exists(path), path
        ctx = zmq.Context()
        try:
            for rid in (b"c", b"0" * 32, None):
                s = ctx.socket(zmq.DEALER)
                s.linger = 0
                try:
                    if rid:
                        s.setsockopt(zmq.ROUTING_ID, rid)
                    s.connect("ipc://" + path)
                    s.send(encode_frame(b"P", b"energy.test.c", b"forged.kind", None,
                                        b'{"forged":true}'))
                    assert s.poll(5000), "no answer from the core"
                    ack = s.recv()
                    assert ack == encode_frame(b"A", b"refused"), ack
                finally:
                    s.close()
        finally:
            ctx.term()
        wait_for(lambda: gw.broker.log().count(
            "discarded frame from a process without a valid credential") >= 3, 10,
            "refusals logged")
        wait_for(lambda: "energy.test.c seq 3 " in gw.broker.log(), 20, "c publishing")
        assert gw.stop() == 0
        rows = journal_query(gw, "SELECT kind FROM messages WHERE kind = 'forged.kind'")
        assert rows == [], rows
        n = journal_query(gw, "SELECT count(*) FROM messages WHERE channel = 'energy.test.c'")
        assert n[0][0] > 0


def test_child_restarts_with_the_running_config():
    """After the config file is edited (not reloaded) a crashing child is
    restarted with the configuration the broker runs, not the file."""
    gw = Gateway(plugins=[crash_plugin("c", interval_ms=30, crash_after=10,
                                       isolation="process")])
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.c") >= 3, 20, "c publishing")
        # an edit that would break the plugin if the child read the file
        gw.plugins[0]["settings"]["interval_ms"] = "broken"
        gw.plugins[0]["settings"]["channel"] = "energy.other"
        gw.write_config()
        n = len(started_pids(gw, "c"))
        wait_for(lambda: len(started_pids(gw, "c")) >= n + 2, 60, "two restarts")
        m = count(sub, "energy.test.c")
        wait_for(lambda: count(sub, "energy.test.c") > m + 3, 20, "still publishing")
        log = gw.broker.log()
        assert "interval_ms" not in log.split("plugin process started")[-1], log
        assert gw.stop() == 0


def test_child_as_unprivileged_user_cannot_read_keys():
    """A child configured with user = "nobody" (the broker runs as root in
    CI) still reaches the core (connected before the drop) and its state,
    publishes, runs as nobody, and cannot open the signing key (EACCES)."""
    import errno
    import pwd
    assert os.geteuid() == 0, "this test needs root (CI runs as root)"
    nobody = pwd.getpwnam("nobody").pw_uid
    gw = Gateway(plugins=[crash_plugin("u", interval_ms=30, isolation="process",
                                       user="nobody")], start=False)
    gw.plugins[0]["settings"]["probe_path"] = os.path.join(gw.keys, "k1.jwk")
    gw.write_config()
    # --check loads the plugin in a --check-plugin child that drops to the
    # user first, like the running child
    r = gw.check()
    assert r.returncode == 0, r.stdout + r.stderr
    def check_fails(pattern, plugins, extra=None):
        with Gateway(plugins=plugins, start=False, extra=extra) as bad:
            r = bad.check()
            assert r.returncode != 0 and re.search(pattern, r.stdout + r.stderr), \
                r.stdout + r.stderr
    # a thread cannot change user: --check says so at the line
    check_fails(r"sectorcast\.conf:\d+: plugin 't': 'user' needs isolation = \"process\"",
                [crash_plugin("t", user="nobody")])
    # an unknown user, on the entry or as gateway.plugin_user, at its line
    check_fails(r"sectorcast\.conf:\d+: plugin 't': 'user': no such user 'no-such-user-sc'",
                [crash_plugin("t", isolation="process", user="no-such-user-sc")])
    check_fails(r"sectorcast\.conf:1: setting 'gateway.plugin_user': no such user 'no-such-user-sc'",
                [crash_plugin("t", isolation="process")],
                {"gateway": {"plugin_user": "no-such-user-sc"}})
    gw.start()
    with gw:
        sub = gw.subscriber("motie", ["energy.test."])
        gw.wait_subscribed("motie", "energy.test.")
        wait_for(lambda: count(sub, "energy.test.u") >= 5, 20, "u publishing as nobody")
        log = gw.broker.log()
        assert "[u] plugin process runs as user 'nobody' (uid %d)" % nobody in log, log
        assert "plugin state" not in log, log
        assert gw.stop() == 0
        sub.stop()
        envs = [e for e in sub.envelopes() if e["channel"] == "energy.test.u"]
        assert envs and all(e["data"]["uid"] == nobody for e in envs), envs[:3]
        assert all(e["data"]["probe_errno"] == errno.EACCES for e in envs), envs[:3]


if __name__ == "__main__":
    run_tests([
        test_abi1_plugin_loads_and_publishes,
        test_missing_capability_fails_alone,
        test_sighup_bad_setting_keeps_plugin_on_old_settings,
        test_sighup_new_instance_failing_init_restarts_previous,
        test_sighup_isolated_new_instance_failing_init_restarts_previous,
        test_constructor_crash_takes_only_its_child,
        test_hung_child_is_killed_and_restarted,
        test_forged_sender_is_refused,
        test_child_restarts_with_the_running_config,
        test_child_as_unprivileged_user_cannot_read_keys,
    ])
