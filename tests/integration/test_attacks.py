"""Only entitled agencies read a channel: hostile peers, agencies and plugins.

Each test starts a real sectorcastd on loopback with real keys (harness.py)
and attacks it the way a stranger on the network, a rogue agency or a rogue
plugin could: wrong or missing CURVE keys, subscriptions outside the grants
or malformed, oversized frames, too many subscriptions, garbage on the
service socket, request floods, publishes the plugin may not make, and
forged JWS fed to the client. Every test also checks that the legitimate
traffic next to the attack is unaffected.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_attacks.py [NAME...]
"""
import base64
import json
import os
import stat
import subprocess
import sys
import time

import zmq
from jwcrypto import jwk
from nacl.signing import SigningKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, Gateway, Process, data_messages, free_port,  # noqa: E402
                     journal_query, monitor_events, recv_frames, rogue_plugin,
                     run_tests, service_request, wait_for, zmq_socket)

# Tests that count what sectorcast-sub refused run without heartbeats, so
# that only the messages under test are counted.
NO_HB = {"gateway": {"heartbeat_ms": 0}}
CH_NUC, CH_LNG, CH_H2 = "energy.nuclear.tasks", "energy.lng.tasks", "energy.hydrogen.tasks"


# -- helpers -----------------------------------------------------------------

def log_count(gw, needle):
    return gw.broker.log().count(needle)


def wait_log(gw, needle, count=1, timeout=10):
    wait_for(lambda: log_count(gw, needle) >= count, timeout, "broker log %r" % needle)


def steady(publish=(CH_NUC,), **kw):
    """A rogue plugin publishing one message per channel every 50 ms."""
    return rogue_plugin(publish=publish, interval_ms=kw.pop("interval_ms", 50), **kw)


def counted(gw, publish, count, **kw):
    """A rogue plugin that publishes `count` messages per channel once
    gw.tmp/go exists."""
    return rogue_plugin(publish=publish, count=count, interval_ms=20,
                        trigger=os.path.join(gw.tmp, "go"), **kw)


def go(gw):
    with open(os.path.join(gw.tmp, "go"), "w"):
        pass


def sub_socket(ctx, gw, agency, subtrees=()):
    s = zmq_socket(ctx, zmq.SUB, gw, agency)
    for t in subtrees:
        s.setsockopt(zmq.SUBSCRIBE, t.encode() if isinstance(t, str) else t)
    s.connect(gw.endpoint)
    return s


def topics(frames_list):
    out = {}
    for f in data_messages(frames_list):
        out[f[0].decode()] = out.get(f[0].decode(), 0) + 1
    return out


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def assert_clean_stop(gw):
    """SIGTERM the broker: it must exit 0 with no sanitizer report (in the
    ASan build a leak or a memory error under attack fails the test)."""
    if gw.broker is None:
        return
    broker = gw.broker
    rc = gw.stop()
    log = broker.log()
    for r in SANITIZER_REPORTS:
        assert r not in log, log[-8000:]
    assert rc == 0, "broker exit status %s\n%s" % (rc, log[-4000:])


class AttackGateway(Gateway):
    """A Gateway whose broker must survive the test and stop cleanly."""

    def __exit__(self, et, ev, tb):
        if et is None:
            try:
                assert_clean_stop(self)
            except BaseException:
                super().__exit__(*sys.exc_info())
                raise
        return super().__exit__(et, ev, tb)


def gateway(**kw):
    kw.setdefault("extra", NO_HB)
    return AttackGateway(**kw)


def with_ctx(fn):
    """Give the test a zmq context and always destroy it (linger 0)."""
    def run():
        ctx = zmq.Context()
        try:
            fn(ctx)
        finally:
            ctx.destroy(linger=0)
    run.__name__ = fn.__name__
    return run


# -- who may connect ---------------------------------------------------------

@with_ctx
def test_unknown_curve_key_receives_nothing(ctx):
    with gateway(plugins=[steady()]) as gw:
        good = sub_socket(ctx, gw, "motie", ["energy."])
        pub, sec = zmq.curve_keypair()
        bad = zmq_socket(ctx, zmq.SUB, gw, (pub, sec))
        mon = bad.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH |
                                     zmq.EVENT_HANDSHAKE_SUCCEEDED)
        bad.setsockopt(zmq.SUBSCRIBE, b"energy.")
        bad.setsockopt(zmq.SUBSCRIBE, b"")
        bad.connect(gw.endpoint)
        evs = monitor_events(mon, 10, until=zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        assert (zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400) in evs, evs
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in [e for e, _ in evs], evs
        wait_log(gw, "refused connection from 127.0.0.1: CURVE key %s is not "
                     "listed in agencies" % pub.decode())
        assert recv_frames(bad, 1.5) == []
        # the stream was live all along for the listed agency
        assert len(data_messages(recv_frames(good, 0.5))) > 5
        # the secret key never appears in the log
        assert sec.decode() not in gw.broker.log()


@with_ctx
def test_plaintext_client_receives_nothing(ctx):
    with gateway(plugins=[steady()]) as gw:
        good = sub_socket(ctx, gw, "motie", ["energy."])
        null = ctx.socket(zmq.SUB)          # NULL mechanism: no CURVE at all
        null.linger = 0
        plain = ctx.socket(zmq.SUB)         # PLAIN: a name and a password
        plain.linger = 0
        plain.plain_username = b"motie"
        plain.plain_password = b"motie"
        mons = []
        for s in (null, plain):
            mons.append(s.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED |
                                             zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                             zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                             zmq.EVENT_HANDSHAKE_FAILED_AUTH))
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.setsockopt(zmq.SUBSCRIBE, b"energy.")
            s.connect(gw.endpoint)
        time.sleep(1.5)
        for s, mon in zip((null, plain), mons):
            assert recv_frames(s, 0.5) == []
            evs = monitor_events(mon, 0.3)
            assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in [e for e, _ in evs], evs
        assert len(data_messages(recv_frames(good, 0.5))) > 5
        assert "subscribed energy." in gw.broker.log()
        assert gw.broker.log().count("subscribed") == 1, gw.broker.log()


# -- what an agency may subscribe to -----------------------------------------

@with_ctx
def test_subscription_outside_grants_refused(ctx):
    with gateway(plugins=[steady((CH_NUC, CH_LNG))]) as gw:
        doe = sub_socket(ctx, gw, "doe", ["energy.lng.", "energy.", "energy.nuclear."])
        motie = sub_socket(ctx, gw, "motie", ["energy.lng."])
        wait_log(gw, "refused subscription 'energy.lng.' of agency 'doe': not granted")
        wait_log(gw, "refused subscription 'energy.' of agency 'doe': not granted")
        wait_log(gw, "agency 'doe' subscribed energy.nuclear.")
        wait_log(gw, "agency 'motie' subscribed energy.lng.")
        recv_frames(doe, 0.2)
        recv_frames(motie, 0.2)
        got_doe, got_motie = topics(recv_frames(doe, 1.5)), topics(recv_frames(motie, 0.5))
        assert set(got_doe) == {CH_NUC + "."}, got_doe
        assert set(got_motie) == {CH_LNG + "."}, got_motie


@with_ctx
def test_empty_and_partial_subscriptions_refused(ctx):
    with gateway(plugins=[steady((CH_NUC, CH_LNG))]) as gw:
        good = sub_socket(ctx, gw, "motie", ["energy.nuclear."])
        bad_subs = [b"", b"energy", b"energy.nuc", b"Energy.", b"energy..",
                    b"energy.nuclear.tasks", b".", b"energy.nuclear.tasks.\n"]
        bad = sub_socket(ctx, gw, "motie", bad_subs)
        for t in bad_subs:
            shown = "".join(chr(c) if 0x20 <= c < 0x7f else "?" for c in t)
            wait_log(gw, "refused subscription '%s' of agency 'motie': not a "
                         "subtree" % shown)
        assert recv_frames(bad, 1.5) == []
        assert len(data_messages(recv_frames(good, 0.5))) > 5


@with_ctx
def test_garbage_subscription_messages_ignored(ctx):
    """Raw XSUB frames: not 0/1-prefixed, empty, multipart, binary."""
    with gateway(plugins=[steady()]) as gw:
        x = zmq_socket(ctx, zmq.XSUB, gw, "motie")
        x.connect(gw.endpoint)
        wait_log(gw, "agency 'motie' connected")
        x.send(b"\x05junk")
        x.send(b"")
        x.send_multipart([b"\x02", b"\x01energy.lng."])
        x.send(b"\x01\xff\x00energy.")
        x.send(b"\x00energy.never-subscribed.")
        wait_log(gw, "ignored malformed subscription message from 'motie'", 2)
        wait_log(gw, "refused subscription '??energy.' of agency 'motie': not a subtree")
        # the broker is fine, and the same connection can still subscribe
        x.send(b"\x01energy.nuclear.")
        wait_log(gw, "agency 'motie' subscribed energy.nuclear.")
        got = topics(recv_frames(x, 1.0))
        assert set(got) == {CH_NUC + "."}, got


def test_two_agencies_get_exactly_their_channels():
    gw = gateway(start=False)
    with gw:
        gw.plugins = [counted(gw, (CH_NUC, CH_LNG, CH_H2), 5)]
        gw.write_config()
        gw.start()
        motie = gw.subscriber("motie", ["energy."])
        doe = gw.subscriber("doe", ["energy.nuclear.", "energy.lng."])
        gw.wait_subscribed("motie", "energy.")
        gw.wait_subscribed("doe", "energy.nuclear.")
        wait_log(gw, "refused subscription 'energy.lng.' of agency 'doe'")
        go(gw)
        wait_log(gw, "published 15 valid message(s); done", timeout=20)
        wait_for(lambda: len(motie.lines()) >= 15 and len(doe.lines()) >= 5, 10,
                 "deliveries")
        time.sleep(0.5)
        m, d = motie.envelopes(), doe.envelopes()
        assert len(m) == 15 and len(d) == 5, (len(m), len(d))
        for ch in (CH_NUC, CH_LNG, CH_H2):
            assert [e["seq"] for e in m if e["channel"] == ch] == [1, 2, 3, 4, 5], ch
        assert [e["channel"] for e in d] == [CH_NUC] * 5
        assert [e["data"]["n"] for e in d] == [1, 2, 3, 4, 5]
        for p in (motie, doe):
            assert p.stop() == 0
            assert "0 refused" in p.log(), p.log()


@with_ctx
def test_unsubscribe_stops_delivery(ctx):
    with gateway(plugins=[steady((CH_NUC, CH_LNG))]) as gw:
        s = sub_socket(ctx, gw, "motie", ["energy.nuclear.", "energy.lng."])
        wait_log(gw, "agency 'motie' subscribed energy.lng.")
        assert set(topics(recv_frames(s, 1.0))) == {CH_NUC + ".", CH_LNG + "."}
        s.setsockopt(zmq.UNSUBSCRIBE, b"energy.nuclear.")
        wait_log(gw, "agency 'motie' unsubscribed energy.nuclear.")
        recv_frames(s, 0.3)                  # what was already in flight
        got = topics(recv_frames(s, 1.5))
        assert set(got) == {CH_LNG + "."}, got
        s.setsockopt(zmq.UNSUBSCRIBE, b"energy.lng.")
        wait_log(gw, "agency 'motie' unsubscribed energy.lng.")
        recv_frames(s, 0.3)
        assert recv_frames(s, 1.5) == []


# -- oversized frames ----------------------------------------------------------

@with_ctx
def test_oversized_subscription_drops_peer(ctx):
    with gateway(plugins=[steady()]) as gw:
        good = sub_socket(ctx, gw, "doe", ["energy.nuclear."])
        x = zmq_socket(ctx, zmq.XSUB, gw, "motie")
        mon = x.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        x.connect(gw.endpoint)
        wait_log(gw, "agency 'motie' connected")
        # the limit is 4096 bytes on the wire (ZMQ_MAXMSGSIZE; CURVE adds 33
        # bytes of framing): 4000 bytes are refused as a subscription, the
        # peer is kept; 5000 bytes close the connection
        x.send(b"\x01" + b"a" * 3999)
        wait_log(gw, "refused subscription 'aaaa")
        assert monitor_events(mon, 0.5) == []
        x.send(b"\x01energy." + b"a" * 4992)
        evs = monitor_events(mon, 10, until=zmq.EVENT_DISCONNECTED)
        assert zmq.EVENT_DISCONNECTED in [e for e, _ in evs], evs
        x.close()
        # everyone else is still served, new peers too
        recv_frames(good, 0.2)
        assert len(data_messages(recv_frames(good, 1.0))) > 5
        again = sub_socket(ctx, gw, "motie", ["energy.nuclear."])
        assert len(data_messages(recv_frames(again, 1.5))) > 3
        assert gw.broker.alive()


@with_ctx
def test_oversized_service_request_drops_peer(ctx):
    with gateway(plugins=[steady()]) as gw:
        good = sub_socket(ctx, gw, "doe", ["energy.nuclear."])
        d = zmq_socket(ctx, zmq.DEALER, gw, "motie")
        mon = d.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        d.connect(gw.service)
        # the limit is 64 KiB of content per frame:
        # a 65000-byte frame is still a request (and a bad one) ...
        _, kind, obj = service_request(d, b"r0", b"whoami", raw_args=b" " * 65000)
        assert (kind, obj["code"], obj["error"]) == ("error", 400, "bad-request"), obj
        assert monitor_events(mon, 0.3) == []
        # ... 70000 bytes close the connection, without a reply
        d.send_multipart([b"r1", b"whoami", b"{" + b" " * 69998 + b"}"])
        evs = monitor_events(mon, 10, until=zmq.EVENT_DISCONNECTED)
        assert zmq.EVENT_DISCONNECTED in [e for e, _ in evs], evs
        assert not d.poll(300), "an oversized request got a reply"
        d.close()
        # another agency, and a new connection of the same one, are served
        doe = zmq_socket(ctx, zmq.DEALER, gw, "doe")
        doe.connect(gw.service)
        _, kind, obj = service_request(doe, b"d1", b"whoami")
        assert kind == "end" and obj["agency"] == "doe", obj
        d2 = zmq_socket(ctx, zmq.DEALER, gw, "motie")
        d2.connect(gw.service)
        _, kind, obj = service_request(d2, b"m1", b"whoami")
        assert kind == "end" and obj["agency"] == "motie", obj
        recv_frames(good, 0.2)
        assert len(data_messages(recv_frames(good, 1.0))) > 5


# -- limits --------------------------------------------------------------------

def test_too_many_subscriptions_refused():
    gw = gateway(start=False, groups={"limits": {"max_subscriptions": 3}})
    with gw:
        gw.plugins = [counted(gw, (CH_NUC, CH_LNG, CH_H2), 4)]
        gw.write_config()
        gw.start()
        sub = gw.subscriber("motie", ["energy.nuclear.", "energy.lng.", "semis.",
                                      "energy.hydrogen.", "ai."])
        for t in ("energy.hydrogen.", "ai."):
            wait_log(gw, "refused subscription '%s' of agency 'motie': too many "
                         "subscriptions on one connection (limits.max_subscriptions)" % t)
        assert log_count(gw, "agency 'motie' subscribed") == 3, gw.broker.log()
        # the limit is per connection: a second one has its own
        other = gw.subscriber("motie", ["energy.hydrogen."])
        gw.wait_subscribed("motie", "energy.hydrogen.")
        go(gw)
        wait_log(gw, "published 12 valid message(s); done", timeout=20)
        wait_for(lambda: len(sub.lines()) >= 8 and len(other.lines()) >= 4, 10, "deliveries")
        time.sleep(0.5)
        chans = sorted(e["channel"] for e in sub.envelopes())
        assert chans == [CH_LNG] * 4 + [CH_NUC] * 4, chans
        assert [e["channel"] for e in other.envelopes()] == [CH_H2] * 4
        for p in (sub, other):
            assert p.stop() == 0 and "0 refused" in p.log(), p.log()


@with_ctx
def test_subscription_limit_not_bypassed_by_unsubscribe(ctx):
    """An unsubscribe of a subtree that was refused (or never subscribed)
    must not free a slot: otherwise refuse + unsubscribe, repeated, gives a
    connection any number of subscriptions."""
    gw = gateway(groups={"limits": {"max_subscriptions": 2}},
                 plugins=[steady((CH_NUC, CH_LNG, CH_H2, "energy.smr.tasks"))])
    with gw:
        s = sub_socket(ctx, gw, "motie", ["energy.nuclear.", "energy.lng."])
        wait_log(gw, "agency 'motie' subscribed energy.lng.")
        for extra in ("energy.hydrogen.", "energy.smr."):
            s.setsockopt(zmq.SUBSCRIBE, extra.encode())     # refused: over the limit
            wait_log(gw, "refused subscription '%s' of agency 'motie': too many" % extra)
            s.setsockopt(zmq.UNSUBSCRIBE, extra.encode())
            time.sleep(0.3)
            # it was never granted here, so there is nothing to withdraw
            assert log_count(gw, "agency 'motie' unsubscribed %s" % extra) == 0
            s.setsockopt(zmq.SUBSCRIBE, extra.encode())     # must still be refused
            wait_log(gw, "refused subscription '%s' of agency 'motie': too many" % extra, 2)
        assert log_count(gw, "agency 'motie' subscribed") == 2, gw.broker.log()
        recv_frames(s, 0.3)
        got = topics(recv_frames(s, 1.5))
        assert set(got) == {CH_NUC + ".", CH_LNG + "."}, (
            "max_subscriptions=2 but the connection receives %s" % sorted(got))


# -- the service socket ----------------------------------------------------------

@with_ctx
def test_service_garbage_and_unknown_commands(ctx):
    with gateway(plugins=[steady()]) as gw:
        wait_log(gw, "energy.nuclear.tasks seq 3 ")
        d = zmq_socket(ctx, zmq.DEALER, gw, "motie")
        d.connect(gw.service)
        nuc = json.dumps({"channel": CH_NUC, "from": 1}).encode()
        cases = [
            # (frames, error name)
            ([b"g1", b"launch-missiles"], "unknown-command"),
            ([b"g2", b"\xff\xfe\x00\x01"], "unknown-command"),
            ([b"g3", b"whoami\x00junk"], "unknown-command"),
            ([b"g4", b"WHOAMI"], "unknown-command"),
            ([b"g5", b""], "unknown-command"),
            ([b"g6"], "bad-request"),
            ([b"g7", b"whoami", b"{}", b"extra"], "bad-request"),
            ([b"", b"whoami"], "bad-request"),
            ([b"x" * 65, b"whoami"], "bad-request"),
            ([b"g8", b"whoami", b"not json"], "bad-request"),
            ([b"g9", b"whoami", b"[1,2]"], "bad-request"),
            ([b"g10", b"heads", b'{"subtree":"energy.","subtree":"semis."}'], "bad-request"),
            ([b"g11", b"replay", b'{"channel":"energy.nuclear.tasks"}'], "bad-request"),
            ([b"g12", b"replay", b'{"channel":"energy.nuclear.tasks","from":0}'], "bad-request"),
            ([b"g13", b"replay", b'{"channel":"energy.nuclear.tasks","from":"1"}'], "bad-request"),
            ([b"g14", b"replay", b'{"channel":"energy.nuclear.tasks.","from":1}'], "bad-request"),
            ([b"g15", b"replay", b'{"channel":"energy.nuclear.tasks","from":1,"limit":0}'], "bad-request"),
            ([b"g16", b"replay", b'{"channel":"energy.nuclear.tasks","from":1,"epoch":7}'], "bad-request"),
            ([b"g17", b"snapshot", b'{"subtree":"energy"}'], "bad-request"),
            ([b"g18", b"snapshot", b"{}"], "bad-request"),
            ([b"g19", b"heads", b'{"subtree":null}'], "bad-request"),
            ([b"g20", b"replay", b'{"channel":"energy.nuclear.tasks","from":1e3}'], "bad-request"),
            ([b"g21", b"whoami", b"\xff\xfe"], "bad-request"),
        ]
        for frames, name in cases:
            d.send_multipart(frames)
            assert d.poll(5000), "no reply to %r" % frames
            fr = d.recv_multipart()
            assert fr[0] == frames[0][:64], (fr, frames)
            assert fr[1] == b"error", (fr, frames)
            obj = json.loads(fr[2])
            assert (obj["code"], obj["error"]) == (400, name), (obj, frames)
            assert obj["text"], obj
        wait_log(gw, "unknown command 'launch-missiles' from agency 'motie'")
        wait_log(gw, "unknown command '????' from agency 'motie'")
        wait_log(gw, "malformed request from agency 'motie' (1 frames)")
        # still serving, the same connection included
        _, kind, obj = service_request(d, b"ok1", b"whoami")
        assert kind == "end" and obj["agency"] == "motie", obj
        items, kind, obj = service_request(d, b"ok2", b"replay", raw_args=nuc)
        assert kind == "end" and obj["count"] == len(items) > 0, obj
        # a grant is checked after the shape: 403 for doe
        doe = zmq_socket(ctx, zmq.DEALER, gw, "doe")
        doe.connect(gw.service)
        _, kind, obj = service_request(doe, b"d1", b"snapshot", {"subtree": "energy.lng."})
        assert (kind, obj["code"], obj["error"]) == ("error", 403, "forbidden"), obj
        assert gw.broker.alive()


@with_ctx
def test_service_rate_limit(ctx):
    gw = gateway(groups={"limits": {"service_rate": 2, "service_burst": 3}})
    with gw:
        flood = zmq_socket(ctx, zmq.DEALER, gw, "motie")
        flood.connect(gw.service)
        calm = zmq_socket(ctx, zmq.DEALER, gw, "doe")
        calm.connect(gw.service)
        _, kind, _ = service_request(flood, b"warm", b"whoami")  # connected
        assert kind == "end"
        t0 = time.monotonic()
        for i in range(30):
            flood.send_multipart([b"f%d" % i, b"whoami"])
        # the other agency has its own bucket
        for i in range(3):
            _, kind, obj = service_request(calm, b"c%d" % i, b"whoami")
            assert kind == "end" and obj["agency"] == "doe", obj
        replies = recv_frames(flood, 1.5)
        elapsed = time.monotonic() - t0
        # burst 3 (less the warm-up) plus 2/s refill over the elapsed time
        assert 2 <= len(replies) <= 2 + int(2 * elapsed) + 1, (len(replies), elapsed)
        assert all(r[1] == b"end" for r in replies), replies
        wait_log(gw, "agency 'motie' exceeds 2 requests/s;")
        assert "agency 'doe' exceeds" not in gw.broker.log()


# -- rogue plugins --------------------------------------------------------------

ATTACK_RESULTS = {
    "foreign": (-2, "channel not granted to this plugin"),
    "badjson": (-3, "data is not a valid JSON object"),
    "notobject": (-3, "data is not a valid JSON object"),
    "dupkey": (-3, "data is not a valid JSON object"),
    "toobig": (-4, "data over the configured size limit"),
    "fits": (0, "ok"),
    "badchannel": (-1, "invalid argument"),
    "badkind": (-1, "invalid argument"),
    "badkey": (-1, "invalid argument"),
    "nulldata": (-1, "invalid argument"),
}


def run_rogue(attacks, refusals, **plugin_extra):
    """A rogue plugin granted energy.nuclear. runs `attacks` once, then
    publishes 3 valid messages; a subscriber to all of energy. must get
    exactly those (and the one 'fits' publish if asked for)."""
    gw = gateway(start=False, extra={"gateway": {"heartbeat_ms": 0, "max_data_bytes": 1024}})
    with gw:
        plugin = counted(gw, (CH_NUC,), 3, attacks=attacks, grants=("energy.nuclear.",),
                         big_bytes=1025, fit_bytes=1024)
        plugin.update(plugin_extra)
        gw.plugins = [plugin]
        gw.write_config()
        gw.start()
        sub = gw.subscriber("motie", ["energy."])
        gw.wait_subscribed("motie", "energy.")
        go(gw)
        wait_log(gw, "published 3 valid message(s); done", timeout=20)
        log = gw.broker.log()
        if plugin_extra.get("isolation") == "process":
            assert "[rogue] plugin process started (pid" in log, log
        for a in attacks:
            rc, text = ATTACK_RESULTS[a]
            assert "attack %s: publish to '" % a in log, (a, log)
            line = [l for l in log.splitlines() if "attack %s: publish" % a in l][0]
            assert line.endswith("returned %d (%s)" % (rc, text)), line
        for r in refusals:
            assert r in log, (r, log)
        want = 3 + (1 if "fits" in attacks else 0)
        wait_for(lambda: len(sub.lines()) >= want, 10, "%d messages" % want)
        time.sleep(0.5)
        envs = sub.envelopes()
        assert len(envs) == want, [e["kind"] for e in envs]
        assert all(e["channel"] == CH_NUC for e in envs), envs
        ticks = [e for e in envs if e["kind"] == "rogue.tick"]
        assert [e["data"]["n"] for e in ticks] == [1, 2, 3]
        attacks_through = [e for e in envs if e["kind"] == "rogue.attack"]
        if "fits" in attacks:
            assert len(attacks_through) == 1
            assert len(json.dumps(attacks_through[0]["data"], separators=(",", ":"))) == 1024
        else:
            assert attacks_through == []
        assert sub.stop() == 0 and "0 refused" in sub.log(), sub.log()
        # nothing refused reached the journal either
        assert_clean_stop(gw)
        rows = journal_query(gw, "SELECT channel, kind FROM messages")
        assert sorted(rows) == sorted([(CH_NUC, "rogue.tick")] * 3 +
                                      [(CH_NUC, "rogue.attack")] * len(attacks_through)), rows


def test_plugin_publish_to_foreign_channel_refused():
    run_rogue(["foreign"], ["[rogue] publish to 'energy.lng.tasks' refused: channel not "
                            "granted to this plugin"])


def test_plugin_publish_invalid_json_refused():
    run_rogue(["badjson", "notobject", "dupkey"],
              ["publish to 'energy.nuclear.tasks' refused: data is not a valid JSON "
               "object: line 1", "top level is not an object", "duplicate object key"])


def test_plugin_publish_over_max_data_bytes_refused():
    run_rogue(["toobig", "fits"],
              ["publish to 'energy.nuclear.tasks' refused: data over the configured "
               "size limit: 1025 bytes, limit 1024"])


def test_plugin_publish_invalid_names_refused():
    run_rogue(["badchannel", "badkind", "badkey", "nulldata"],
              ["publish to 'Energy..Nuclear' refused: invalid argument: not a channel name",
               "refused: invalid argument: kind must be",
               "refused: invalid argument: key must be",
               "refused: invalid argument: data is NULL"])


def test_plugin_in_a_child_process_is_refused_the_same():
    """isolation = "process": the plugin's host runs in a child process; the
    same calls get the same codes and nothing of them is published."""
    run_rogue(["foreign", "badjson", "toobig", "fits"],
              ["publish to 'energy.lng.tasks' refused: channel not granted",
               "refused: data over the configured size limit: 1025 bytes, limit 1024"],
              isolation="process")


# -- forged messages fed to the client ------------------------------------------

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Signer:
    def __init__(self):
        self.sk = SigningKey.generate()
        x = b64u(bytes(self.sk.verify_key))
        self.jwk = jwk.JWK(kty="OKP", crv="Ed25519", x=x)
        self.kid = self.jwk.thumbprint()

    def public_entry(self):
        e = json.loads(self.jwk.export_public())
        e.update(kid=self.kid, use="sig", alg="EdDSA")
        return e

    def sign(self, payload, header=None, kid=None):
        h = header if header is not None else {
            "alg": "EdDSA", "kid": kid or self.kid, "typ": "sectorcast-envelope+jws"}
        hb = h if isinstance(h, bytes) else json.dumps(h, separators=(",", ":")).encode()
        pb = payload if isinstance(payload, bytes) else json.dumps(
            payload, separators=(",", ":")).encode()
        signing_input = (b64u(hb) + "." + b64u(pb)).encode()
        sig = self.sk.sign(signing_input).signature
        return signing_input + b"." + b64u(sig).encode()


def envelope(n, channel=CH_NUC, **over):
    """Envelope number n; members given as None in `over` are left out."""
    e = {"v": 1, "id": "%032x" % n, "channel": channel, "epoch": "e" * 32, "seq": n,
         "ts": "2026-11-25T12:00:00.000Z", "kind": "task.updated", "key": "T-%d" % n,
         "source": {"gateway": "forger", "plugin": "p", "sector": "energy"},
         "data": {"n": n}}
    e.update(over)
    for k in [k for k, v in over.items() if v is None]:
        del e[k]
    return e


class FakeGateway:
    """A plaintext XPUB on loopback signing with its own keys, and a
    sectorcast-sub (no -k/-c: plaintext) verifying against a JWKS that
    lists only good_key."""

    def __init__(self, ctx):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="sc-forge-")
        self.good_key, self.other_key = Signer(), Signer()
        jwks_path = os.path.join(self.tmp, "jwks.json")
        with open(jwks_path, "w") as f:
            json.dump({"keys": [self.good_key.public_entry()]}, f)
        port = free_port()
        self.pub = ctx.socket(zmq.XPUB)       # XPUB: to see the subscription
        self.pub.linger = 0
        self.pub.bind("tcp://127.0.0.1:%d" % port)
        self.sub = Process([os.path.join(BIN, "sectorcast-sub"),
                            "-e", "tcp://127.0.0.1:%d" % port, "-j", jwks_path, "energy."],
                           os.path.join(self.tmp, "sub.err"), os.path.join(self.tmp, "sub.out"))
        assert self.pub.poll(10000), "sectorcast-sub did not subscribe"
        assert self.pub.recv() == b"\x01energy."

    def feed(self, messages, delivered):
        """Send messages; wait until `delivered` are printed and every other
        one is reported refused; stop the subscriber; return stderr lines."""
        for m in messages:
            self.pub.send_multipart(m)
        refused = len(messages) - delivered
        wait_for(lambda: len(self.sub.lines()) >= delivered and
                 self.sub.log().count("refused message on") >= refused, 10,
                 "all messages; got:\n%s\n%s" % (self.sub.stdout(), self.sub.log()))
        time.sleep(0.3)
        assert self.sub.stop() == 0
        return self.sub.log().splitlines()

    def close(self):
        import shutil
        self.sub.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


@with_ctx
def test_client_refuses_forged_jws(ctx):
    fake = FakeGateway(ctx)
    try:
        good_key, other_key = fake.good_key, fake.other_key
        topic = (CH_NUC + ".").encode()
        good1 = good_key.sign(envelope(1))
        good2 = good_key.sign(envelope(2))
        h, p, s = good1.split(b".")
        tampered_payload = json.dumps(envelope(1, data={"n": 999}),
                                      separators=(",", ":")).encode()
        flipped = good1[:-2] + (b"A" if good1[-2:-1] != b"A" else b"B") + good1[-1:]
        bad = [  # (name, frames, words expected in the reason)
            ("tampered payload", [topic, h + b"." + b64u(tampered_payload).encode() + b"." + s],
             "signature does not verify"),
            ("flipped signature byte", [topic, flipped], "signature"),
            ("truncated", [topic, good1[:len(good1) // 2]], "3 parts"),
            ("no signature", [topic, h + b"." + p + b"."], "signature"),
            ("re-signed with another key", [topic, other_key.sign(envelope(1))], "not in the JWKS"),
            ("another key claiming our kid", [topic, other_key.sign(envelope(1), kid=good_key.kid)],
             "signature does not verify"),
            ("wrong channel", [(CH_LNG + ".").encode(), good1], "does not match topic"),
            ("alg none", [topic, b64u(b'{"alg":"none","kid":"%s"}' % good_key.kid.encode()).encode()
                          + b"." + p + b"."], "signature"),
            ("alg HS256", [topic, good_key.sign(envelope(1), header={
                "alg": "HS256", "kid": good_key.kid})], "alg"),
            ("crit header", [topic, good_key.sign(envelope(1), header={
                "alg": "EdDSA", "kid": good_key.kid, "crit": ["exp"], "exp": 1})], "crit"),
            ("envelope v2", [topic, good_key.sign(envelope(1, v=2))], "version"),
            ("envelope without seq", [topic, good_key.sign(envelope(1, seq=None))], "seq"),
            ("seq a string", [topic, good_key.sign(envelope(1, seq="1"))], "seq"),
            ("payload not JSON", [topic, good_key.sign(b"not json")], "payload"),
            ("payload a JSON array", [topic, good_key.sign(b"[1]")], "payload"),
            ("one frame", [topic], "shape"),
            ("three frames, unknown tag", [topic, b"sc-bogus-v9", good1], "shape"),
            ("four frames", [topic, good1, good1, good1], "shape"),
            ("topic without a dot", [CH_NUC.encode(), good1], "not a topic"),
            ("empty JWS", [topic, b""], "empty"),
            ("binary JWS", [topic, b"\x00\xff" * 40], "3 parts"),
        ]
        err = fake.feed([[topic, good1]] + [f for _, f, _ in bad] + [[topic, good2]], 2)
        out = fake.sub.stdout().splitlines()
        assert [json.loads(l)["seq"] for l in out] == [1, 2], out
        assert json.loads(out[0]) == envelope(1)   # printed exactly as signed
        refusals = [l for l in err if "refused message on" in l]
        assert len(refusals) == len(bad), "\n".join(err)
        for (name, frames, word), line in zip(bad, refusals):
            assert word and word.lower() in line.lower(), (name, line)
            assert line.startswith("sectorcast-sub: refused message on "), (name, line)
        assert err[-1] == "sectorcast-sub: 2 delivered, %d refused" % len(bad), err[-1]
    finally:
        fake.close()


@with_ctx
def test_client_refusal_reason_cannot_inject_log_lines(ctx):
    """A forged message's header text ends up in the refusal reason; a
    control character in it must not let the sender write a log line."""
    fake = FakeGateway(ctx)
    try:
        topic = (CH_NUC + ".").encode()
        forged = [[topic, fake.good_key.sign(envelope(1), header={
                      "alg": "x\nsectorcast-sub: 9 delivered", "kid": fake.good_key.kid})],
                  [topic, fake.good_key.sign(envelope(1), header={
                      "alg": "EdDSA", "kid": "x\nsectorcast-sub: 8 delivered"})],
                  [b"energy.\nsectorcast-sub: 7 delivered.", fake.good_key.sign(envelope(1))]]
        err = fake.feed(forged + [[topic, fake.good_key.sign(envelope(2))]], 1)
        assert len([l for l in err if "refused message on" in l]) == len(forged), err
        for l in err:
            assert l.startswith("sectorcast-sub: refused message on ") or \
                l == "sectorcast-sub: 1 delivered, %d refused" % len(forged), \
                "a forged line in the subscriber's log: %r\n%s" % (l, "\n".join(err))
    finally:
        fake.close()


# -- secrets on disk -------------------------------------------------------------

def refuses_loose_key(relpath, what):
    gw = gateway(start=False)
    with gw:
        path = os.path.join(gw.keys, relpath)
        os.chmod(path, 0o644)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        r = subprocess.run([os.path.join(BIN, "sectorcastd"), "-c", gw.config],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert path in r.stderr and "mode 0644" in r.stderr, r.stderr
        assert "chmod 600 %s" % path in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(gw.tmp, "data", "journal.db"))
        r = gw.check()
        assert r.returncode == 1, r
        lines = [l for l in r.stderr.splitlines() if path in l]
        assert lines, r.stderr
        for l in lines:
            file_, line, rest = l.split(":", 2)
            assert file_ == gw.config and line.isdigit(), l
            assert what in rest and "mode 0644 allows group/other access" in rest, l
        # fixed, it starts
        os.chmod(path, 0o600)
        gw.start()


def test_world_readable_signing_key_refused():
    refuses_loose_key("k1.jwk", "signing key 'k1'")


def test_world_readable_curve_secret_refused():
    refuses_loose_key("broker.secret", "broker.secret")


if __name__ == "__main__":
    run_tests([
        test_unknown_curve_key_receives_nothing,
        test_plaintext_client_receives_nothing,
        test_subscription_outside_grants_refused,
        test_empty_and_partial_subscriptions_refused,
        test_garbage_subscription_messages_ignored,
        test_two_agencies_get_exactly_their_channels,
        test_unsubscribe_stops_delivery,
        test_oversized_subscription_drops_peer,
        test_oversized_service_request_drops_peer,
        test_too_many_subscriptions_refused,
        test_subscription_limit_not_bypassed_by_unsubscribe,
        test_service_garbage_and_unknown_commands,
        test_service_rate_limit,
        test_plugin_publish_to_foreign_channel_refused,
        test_plugin_publish_invalid_json_refused,
        test_plugin_publish_over_max_data_bytes_refused,
        test_plugin_publish_invalid_names_refused,
        test_plugin_in_a_child_process_is_refused_the_same,
        test_client_refuses_forged_jws,
        test_client_refusal_reason_cannot_inject_log_lines,
        test_world_readable_signing_key_refused,
        test_world_readable_curve_secret_refused,
    ])
