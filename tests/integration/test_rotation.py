"""Signing-key rotation, following docs/operations.md step by step.

A plugin publishes steadily and agencies subscribe (sectorcast-sub) while
the operator adds a key, hands out the new JWKS, switches the active key
and retires the old one. The agency that follows the procedure must see
every message exactly once and refuse none; an agency that never took the
new JWKS refuses the new messages (it never accepts them unverified).

The procedure is applied once with broker restarts and once with SIGHUP
reloads. The subscribers here run without resume state, so around each
restart (of the broker, or of an agency's subscriber to load a new JWKS)
the test pauses the plugin (its trigger file) until they are connected
again; across a reload the plugin keeps publishing. What is asserted is
that rotation itself loses or refuses nothing.

Run: SC_BUILD=build /usr/bin/python3 tests/integration/test_rotation.py [NAME...]
"""
import json
import os
import shutil
import signal
import sys
import time

import zmq
from jwcrypto import jwk, jws

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Gateway, journal_heads, journal_query, jws_header,  # noqa: E402
                     keygen, rogue_plugin, run_tests, service_request, wait_for,
                     zmq_socket)

CH_NUC, CH_LNG = "energy.nuclear.tasks", "energy.lng.tasks"
NO_HB = {"gateway": {"heartbeat_ms": 0}}


# -- the operator's and the agencies' side --------------------------------------

class Rotation:
    """A gateway with a steady rogue plugin behind a trigger file."""

    def __init__(self, gw, channels=(CH_NUC, CH_LNG)):
        self.gw = gw
        self.channels = channels
        self.trigger = os.path.join(gw.tmp, "go")
        self.agency_dir = os.path.join(gw.tmp, "agency")
        os.makedirs(self.agency_dir)
        gw.plugins = [rogue_plugin(publish=channels, interval_ms=30, trigger=self.trigger)]
        self.subs = []            # (process, channels it covers, its JWKS)

    def heads(self):
        return journal_heads(self.gw)

    def rows(self):
        """[(channel, seq, ts, kid)] of every retained message."""
        return [(ch, seq, ts, jws_header(tok)["kid"]) for ch, seq, ts, tok in journal_query(
            self.gw, "SELECT channel, seq, ts, jws FROM messages ORDER BY channel, seq")]

    def hand_out_jwks(self, name):
        """What the operator gives the agencies: a copy of the JWKS file."""
        dst = os.path.join(self.agency_dir, name)
        shutil.copy(self.gw.jwks, dst)
        return dst

    def subscriber(self, agency, subtrees, jwks_path, name):
        gw = self.gw
        before = gw.broker.log().count("agency '%s' subscribed" % agency)
        p = gw.subscriber(agency, subtrees, name=name, jwks=jwks_path)
        covered = [c for c in self.channels if any((c + ".").startswith(s) for s in subtrees)]
        self.subs.append((p, covered, agency, len(subtrees)))
        wait_for(lambda: gw.broker.log().count("agency '%s' subscribed" % agency) >=
                 before + len(subtrees), 10, "%s subscribed" % name)
        return p

    def received(self, p):
        """Messages a subscriber got: printed + refused."""
        return len(p.lines()) + p.log().count("refused message on")

    def pause(self):
        """Stop the plugin publishing and wait until every running
        subscriber has received everything journaled on its channels."""
        if os.path.exists(self.trigger):
            os.unlink(self.trigger)
        time.sleep(0.3)                     # > one tick of the plugin
        heads = self.heads()
        for p, covered, _, _ in self.subs:
            if not p.alive():
                continue
            want = sum(heads.get(c, 0) for c in covered) - getattr(p, "base", 0)
            wait_for(lambda: self.received(p) >= want, 10,
                     "%s to receive %d" % (p.stdout_path, want))

    def resume(self, at_least=10):
        """Publish again; wait for `at_least` new messages per channel."""
        start = self.heads()
        with open(self.trigger, "w"):
            pass
        wait_for(lambda: all(self.heads().get(c, 0) >= start.get(c, 0) + at_least
                             for c in self.channels), 20, "%d more messages" % at_least)

    def restart_broker(self):
        """Stop and start the broker (applies the config); the running
        subscribers reconnect and subscribe again before publishing goes on."""
        gw = self.gw
        self.pause()
        assert gw.stop() == 0
        gw.start()
        for agency, n in self.live_subscriptions().items():
            wait_for(lambda: gw.broker.log().count("agency '%s' subscribed" % agency) >= n,
                     15, "%s to subscribe again" % agency)

    def reload(self):
        """SIGHUP: apply the config without a restart (subscribers stay
        connected, nothing pauses). Returns the log lines of the reload."""
        gw = self.gw
        before = gw.broker.log().count("reload done")
        gw.broker.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: gw.broker.log().count("reload done") > before or
                 gw.broker.log().count("reload refused") > 0, 10, "reload")
        lines = [l for l in gw.broker.log().splitlines() if "reload" in l]
        assert not any("reload refused" in l for l in lines), lines
        return lines

    def live_subscriptions(self):
        out = {}
        for p, _, agency, n in self.subs:
            if p.alive():
                out[agency] = out.get(agency, 0) + n
        return out

    def check(self):
        r = self.gw.check()
        assert r.returncode == 0, r.stderr


def kid_of(path):
    return keygen("kid", path).split()[0]


def jwks_kids(path):
    with open(path) as f:
        return sorted(k["kid"] for k in json.load(f)["keys"])


def started_at(gw):
    """Timestamp of the running broker's "publishing on" log line."""
    line = [l for l in gw.broker.log().splitlines() if "publishing on" in l][0]
    return line.split()[0]


def assert_seen_once(rot, a1, a2):
    """The compliant agency's two runs (a1 before it loaded the new JWKS,
    a2 after, a2.base messages in) together saw every seq of every channel
    once, in order, and refused none. Stops both; returns the heads."""
    heads = rot.heads()
    envs = a1.envelopes() + a2.envelopes()
    for ch in rot.channels:
        seqs = [e["seq"] for e in envs if e["channel"] == ch]
        assert seqs == list(range(1, heads[ch] + 1)), (ch, seqs, heads[ch])
    for p in (a1, a2):
        p.stop()
        assert p.log().strip().endswith(" 0 refused"), p.log()
    assert a2.log().strip().endswith("sectorcast-sub: %d delivered, 0 refused"
                                     % (sum(heads.values()) - a2.base)), a2.log()
    return heads


# -- the procedure ---------------------------------------------------------------

def test_rotation_loses_and_refuses_nothing():
    gw = Gateway(start=False, extra=NO_HB,
                 groups={"retention": [{"subtree": "energy.", "max_messages": 20}]})
    with gw:
        rot = Rotation(gw)
        gw.write_config()                               # keys: k1, active k1
        gw.start()
        k1 = kid_of(os.path.join(gw.keys, "k1.jwk"))
        jwks_v1 = rot.hand_out_jwks("jwks-v1.json")
        assert jwks_kids(jwks_v1) == [k1]
        # the agency that follows the procedure, and one that never will
        a1 = rot.subscriber("motie", ["energy."], jwks_v1, "motie-1")
        lag = rot.subscriber("doe", ["energy.nuclear."], jwks_v1, "doe-laggard")
        rot.resume()

        # 1. add k2 to signing.keys, k1 stays active; check; restart
        keygen("sign", os.path.join(gw.keys, "k2.jwk"))
        k2 = kid_of(os.path.join(gw.keys, "k2.jwk"))
        keys = {"k1": "keys/k1.jwk", "k2": "keys/k2.jwk"}
        gw.write_config(signing_keys=keys, active="k1")
        rot.check()
        rot.restart_broker()
        assert jwks_kids(gw.jwks) == sorted([k1, k2])   # published: both keys
        rot.resume()

        # 2. hand the new JWKS to the agencies; they load it (restart)
        jwks_v2 = rot.hand_out_jwks("jwks-v2.json")
        rot.pause()
        a1.stop()
        a2 = rot.subscriber("motie", ["energy."], jwks_v2, "motie-2")
        a2.base = sum(rot.heads().values())            # a1 got everything so far
        rot.resume()

        # 3. switch signing.active to k2; check; restart
        gw.write_config(signing_keys=keys, active="k2")
        rot.check()
        rot.restart_broker()
        # the switch time: the new broker's start line; every message it
        # signs is younger, everything the old key signed is older
        switch_ts = started_at(gw)
        rot.resume(at_least=25)                         # > retention's 20 per channel
        rot.pause()
        rows = rot.rows()
        assert {kid for _, _, ts, kid in rows if ts < switch_ts} <= {k1}, rows
        assert {kid for _, _, ts, kid in rows if ts >= switch_ts} == {k2}, rows

        # 4. retire k1 -- only once no retained message needs it. Retention
        #    prunes at start (and every minute): restart, then check that no
        #    message signed before the switch is left
        rot.restart_broker()
        old = [r for r in rot.rows() if r[2] <= switch_ts]    # the documented query
        assert old == [], "retention kept messages signed by k1: %s" % old
        gw.write_config(signing_keys={"k2": "keys/k2.jwk"}, active="k2")
        rot.check()
        rot.restart_broker()
        assert jwks_kids(gw.jwks) == [k2]
        rot.resume()
        rot.pause()

        # what the compliant agency saw: every seq once, in order, none refused
        heads = assert_seen_once(rot, a1, a2)

        # the laggard (JWKS v1 only) verified what k1 signed and refused,
        # never printed, what k2 signed
        lag_seqs = [e["seq"] for e in lag.envelopes()]
        assert lag_seqs == list(range(1, len(lag_seqs) + 1)) and len(lag_seqs) >= 30, lag_seqs
        refused = lag.log().count("is not in the JWKS")
        assert refused == heads[CH_NUC] - len(lag_seqs) > 0, (refused, heads, len(lag_seqs))
        assert lag.log().count("refused message on") == refused

        # after the retirement, replay serves every retained message, and
        # each verifies with the new JWKS alone (jwcrypto)
        keyset = jwk.JWKSet.from_json(open(gw.jwks).read())
        ctx = zmq.Context()
        try:
            d = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            d.connect(gw.service)
            _, kind, err = service_request(d, b"r0", b"replay", {"channel": CH_NUC, "from": 1})
            assert kind == "error" and err["code"] == 410, err
            items, kind, end = service_request(d, b"r1", b"replay",
                                               {"channel": CH_NUC, "from": err["oldest"]})
            assert kind == "end" and end["count"] == len(items) > 0, end
            for topic, token in items:
                t = jws.JWS()
                t.deserialize(token.decode())
                t.verify(keyset.get_key(t.jose_header["kid"]), alg="EdDSA")
        finally:
            ctx.destroy(linger=0)
        lag.stop()
        assert gw.stop() == 0


def test_rotation_by_reload_while_publishing():
    """The same procedure applied with SIGHUP: the plugin publishes through
    both reloads without a pause and the subscriber stays connected; only
    the agency's own restart (to load the new JWKS) pauses publishing.
    Without retention the messages of the old key stay in the journal, so
    the documented check says: keep the old key listed (inactive)."""
    gw = Gateway(start=False, extra=NO_HB)
    with gw:
        rot = Rotation(gw)
        gw.write_config()
        gw.start()
        k1 = kid_of(os.path.join(gw.keys, "k1.jwk"))
        a1 = rot.subscriber("motie", ["energy."], rot.hand_out_jwks("jwks-v1.json"), "motie-1")
        rot.resume()

        # 1. add k2, reload while publishing
        keygen("sign", os.path.join(gw.keys, "k2.jwk"))
        k2 = kid_of(os.path.join(gw.keys, "k2.jwk"))
        keys = {"k1": "keys/k1.jwk", "k2": "keys/k2.jwk"}
        gw.write_config(signing_keys=keys, active="k1")
        rot.check()
        rot.reload()
        assert jwks_kids(gw.jwks) == sorted([k1, k2])
        rot.resume()
        # 2./3. hand out the JWKS; the agency restarts its subscriber
        jwks_v2 = rot.hand_out_jwks("jwks-v2.json")
        rot.pause()
        a1.stop()
        a2 = rot.subscriber("motie", ["energy."], jwks_v2, "motie-2")
        a2.base = sum(rot.heads().values())
        rot.resume()
        # 4. switch while publishing
        gw.write_config(signing_keys=keys, active="k2")
        rot.check()
        lines = rot.reload()
        switch = [l for l in lines if "active 'k2'" in l]
        assert switch, lines
        switch_ts = switch[-1].split()[0]
        rot.resume(at_least=15)
        rot.pause()
        rows = rot.rows()
        assert {kid for _, _, ts, kid in rows if ts > switch_ts} == {k2}, rows
        # 5. the documented check: messages at or before T are retained
        old = [r for r in rows if r[2] <= switch_ts]
        assert k1 in {r[3] for r in old}, old
        assert {r[3] for r in rows if r[2] < switch_ts} == {k1}, rows
        # ... so k1 stays listed: the JWKS keeps both, k2 signs

        assert_seen_once(rot, a1, a2)
        # the broker stayed up the whole time: one start line
        assert gw.broker.log().count("publishing on") == 1
        assert gw.stop() == 0


def test_retiring_a_key_too_early_breaks_replay():
    """A key removed while messages it signed are still journaled: the
    gateway no longer serves those messages (500 corrupt) -- which is why
    docs/operations.md says to retire a key only when nothing needs it."""
    gw = Gateway(start=False, extra=NO_HB)
    with gw:
        rot = Rotation(gw, channels=(CH_NUC,))
        gw.write_config()
        gw.start()
        rot.resume(at_least=3)
        keygen("sign", os.path.join(gw.keys, "k2.jwk"))
        gw.write_config(signing_keys={"k2": "keys/k2.jwk"}, active="k2")   # k1 gone
        rot.restart_broker()
        # the broker says at start which retained messages lost their key
        k1 = kid_of(os.path.join(gw.keys, "k1.jwk"))
        assert ("signed by kid %s, which is no longer in signing.keys" % k1) in gw.broker.log()
        rot.resume(at_least=3)
        rot.pause()
        ctx = zmq.Context()
        try:
            d = zmq_socket(ctx, zmq.DEALER, gw, "motie")
            d.connect(gw.service)
            items, kind, err = service_request(d, b"r1", b"replay", {"channel": CH_NUC, "from": 1})
            assert kind == "error" and (err["code"], err["error"]) == (500, "corrupt"), err
            assert items == []
            assert "fails verification" in gw.broker.log()
            # what k2 signed is still served
            k2_first = min(seq for ch, seq, ts, kid in rot.rows()
                           if kid == kid_of(os.path.join(gw.keys, "k2.jwk")))
            items, kind, end = service_request(d, b"r2", b"replay",
                                               {"channel": CH_NUC, "from": k2_first})
            assert kind == "end" and end["count"] == len(items) >= 3, end
        finally:
            ctx.destroy(linger=0)
        assert gw.stop() == 0


def test_per_subtree_signing_rule():
    """signing.channels rotates one channel family first: energy.lng. is
    signed by k2 while everything else stays on k1."""
    gw = Gateway(start=False, extra=NO_HB)
    with gw:
        rot = Rotation(gw)
        keygen("sign", os.path.join(gw.keys, "k2.jwk"))
        gw.write_config(signing_keys={"k1": "keys/k1.jwk", "k2": "keys/k2.jwk"}, active="k1",
                        sign_rules=[("energy.lng.", "k2")])
        rot.check()
        gw.start()
        k1, k2 = kid_of(os.path.join(gw.keys, "k1.jwk")), kid_of(os.path.join(gw.keys, "k2.jwk"))
        both = rot.hand_out_jwks("jwks-both.json")
        only1 = os.path.join(rot.agency_dir, "jwks-k1.json")
        with open(both) as f:
            keys = json.load(f)
        keys["keys"] = [k for k in keys["keys"] if k["kid"] == k1]
        with open(only1, "w") as f:
            json.dump(keys, f)
        full = rot.subscriber("motie", ["energy."], both, "motie-both")
        partial = rot.subscriber("motie", ["energy."], only1, "motie-k1")
        rot.resume()
        rot.pause()
        by_kid = {ch: {kid for c, _, _, kid in rot.rows() if c == ch} for ch in (CH_NUC, CH_LNG)}
        assert by_kid == {CH_NUC: {k1}, CH_LNG: {k2}}, by_kid
        heads = rot.heads()
        assert len(full.lines()) == sum(heads.values())
        assert {e["channel"] for e in partial.envelopes()} == {CH_NUC}
        assert partial.log().count("is not in the JWKS") == heads[CH_LNG]
        for p in (full, partial):
            p.stop()
        assert full.log().strip().endswith(" 0 refused"), full.log()
        assert gw.stop() == 0


if __name__ == "__main__":
    run_tests([
        test_rotation_loses_and_refuses_nothing,
        test_rotation_by_reload_while_publishing,
        test_retiring_a_key_too_early_breaks_replay,
        test_per_subtree_signing_rule,
    ])
