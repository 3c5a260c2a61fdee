"""Interop: a subscriber written only from docs/protocol.md and the JWKS.

No code of ours is used on the receiving side: pyzmq for transport and
CURVE, jwcrypto for JWS/JWK. The broker side is a real sectorcastd.
Run: SC_BUILD=build /usr/bin/python3 tests/interop/test_interop.py
"""
import json
import os
import sys
import time

import zmq
from jwcrypto import jwk, jws

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from harness import Gateway, run_tests, start_energy  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        return f.read().strip()


def curve_socket(ctx, kind, gw, agency):
    s = ctx.socket(kind)
    s.curve_serverkey = read(os.path.join(gw.keys, "broker.public"))
    s.curve_publickey = read(os.path.join(gw.keys, agency + ".public"))
    s.curve_secretkey = read(os.path.join(gw.keys, agency + ".secret"))
    s.linger = 0
    return s


def verify(keys, topic, token):
    """docs/protocol.md section 8, step by step. Returns the envelope."""
    t = jws.JWS()
    t.deserialize(token.decode("ascii"))
    hdr = t.jose_header
    assert hdr["alg"] == "EdDSA" and "crit" not in hdr, hdr
    assert hdr["typ"] == "sectorcast-envelope+jws", hdr
    key = keys.get_key(hdr["kid"])
    assert key is not None, "kid %s not in JWKS" % hdr["kid"]
    # RFC 7638: the kid is the key's thumbprint
    assert key.thumbprint() == hdr["kid"]
    t.verify(key, alg="EdDSA")
    env = json.loads(t.payload)
    assert env["v"] == 1
    assert (env["channel"] + ".").encode() == topic, (env["channel"], topic)
    for k, typ in (("id", str), ("channel", str), ("epoch", str), ("seq", int),
                   ("ts", str), ("kind", str), ("source", dict), ("data", dict)):
        assert isinstance(env[k], typ), (k, env[k])
    assert env["key"] is None or isinstance(env["key"], str)
    return env


def test_python_subscriber_verifies_with_jwks_only():
    gw = Gateway(start=False)
    with gw:
        reg, full = start_energy(gw)
        keys = jwk.JWKSet.from_json(open(gw.jwks).read())
        ctx = zmq.Context()
        try:
            sub = curve_socket(ctx, zmq.SUB, gw, "motie")
            sub.setsockopt(zmq.SUBSCRIBE, b"energy.")
            sub.connect(gw.endpoint)
            gw.wait_subscribed("motie", "energy.")
            for f in ("tasks.json", "standards.json"):
                with open(os.path.join(full, f)) as src, open(os.path.join(reg, f + ".tmp"), "w") as dst:
                    dst.write(src.read())
                os.rename(os.path.join(reg, f + ".tmp"), os.path.join(reg, f))
            want = sum(len(json.load(open(os.path.join(full, f)))[k])
                       for f, k in (("tasks.json", "tasks"), ("standards.json", "standards")))
            envs = []
            deadline = time.monotonic() + 20
            while len(envs) < want and time.monotonic() < deadline:
                if not sub.poll(500):
                    continue
                frames = sub.recv_multipart()
                if len(frames) == 3 and frames[1] == b"sc-heartbeat-v1":
                    hb = json.loads(frames[2])
                    assert (hb["channel"] + ".").encode() == frames[0]
                    continue
                assert len(frames) == 2, frames
                envs.append(verify(keys, frames[0], frames[1]))
            assert len(envs) == want, (len(envs), want)
            seqs = {}
            for e in envs:
                seqs.setdefault(e["channel"], []).append(e["seq"])
            for ch, v in seqs.items():
                assert v == list(range(v[0], v[0] + len(v))), (ch, v)

            # the service socket, also from the doc alone: replay a channel
            dealer = curve_socket(ctx, zmq.DEALER, gw, "motie")
            dealer.connect(gw.service)
            ch = "energy.nuclear.tasks"
            dealer.send_multipart([b"r1", b"replay", json.dumps({"channel": ch, "from": 1}).encode()])
            items, end = [], None
            while end is None:
                assert dealer.poll(10000), "no reply to replay"
                fr = dealer.recv_multipart()
                assert fr[0] == b"r1", fr
                if fr[1] == b"msg":
                    items.append(verify(keys, fr[2], fr[3]))
                else:
                    assert fr[1] == b"end", fr
                    end = json.loads(fr[2])
            live = [e for e in envs if e["channel"] == ch]
            assert [e["seq"] for e in items] == [e["seq"] for e in live]
            assert [e["id"] for e in items] == [e["id"] for e in live]
            assert end["head"] == live[-1]["seq"] and end["more"] is False, end

            # a grant we do not have is an explicit error
            doe = curve_socket(ctx, zmq.DEALER, gw, "doe")
            doe.connect(gw.service)
            doe.send_multipart([b"x", b"replay", json.dumps({"channel": "energy.lng.tasks", "from": 1}).encode()])
            assert doe.poll(10000)
            fr = doe.recv_multipart()
            assert fr[1] == b"error" and json.loads(fr[2])["code"] == 403, fr
        finally:
            ctx.destroy(linger=0)


if __name__ == "__main__":
    run_tests([test_python_subscriber_verifies_with_jwks_only])
