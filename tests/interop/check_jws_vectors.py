#!/usr/bin/python3
"""check_jws_vectors.py - key files written by sectorcast-keygen, read by an
independent JOSE library (python3-jwcrypto).

Checks that a private JWK from `sectorcast-keygen sign` loads in jwcrypto
with the same RFC 7638 thumbprint as its "kid", that `sectorcast-keygen
jwks` output is a JWKS jwcrypto accepts and that a JWS jwcrypto signs with
the private key verifies against it, that `sectorcast-keygen kid` agrees
with jwcrypto for a key jwcrypto generated, and the RFC 8037 A.3 thumbprint.

usage: check_jws_vectors.py [path/to/sectorcast-keygen]   (default:
build/bin/sectorcast-keygen). Exit 0 when every check passes.
"""
import json
import os
import subprocess
import sys
import tempfile

from jwcrypto import jwk, jws

KEYGEN = sys.argv[1] if len(sys.argv) > 1 else "build/bin/sectorcast-keygen"
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail and not ok else ""))
    if not ok:
        failures += 1


def keygen(*args):
    return subprocess.run([KEYGEN, *args], capture_output=True, text=True)


with tempfile.TemporaryDirectory() as d:
    key_path = os.path.join(d, "sign.jwk")
    r = keygen("sign", key_path)
    check("keygen sign", r.returncode == 0, r.stderr)
    check("private JWK mode 0600", os.stat(key_path).st_mode & 0o777 == 0o600)
    doc = json.load(open(key_path))
    priv = jwk.JWK(**doc)
    check("kid is jwcrypto's RFC 7638 thumbprint", priv.thumbprint() == doc["kid"])

    jwks_path = os.path.join(d, "jwks.json")
    r = keygen("jwks", jwks_path, key_path)
    check("keygen jwks", r.returncode == 0, r.stderr)
    keyset = jwk.JWKSet.from_json(open(jwks_path).read())
    pub = keyset.get_key(doc["kid"])
    check("JWKS holds the key under its kid", pub is not None)
    check("JWKS holds no private part", "d" not in json.load(open(jwks_path))["keys"][0])

    token = jws.JWS(b'{"v":1}')
    token.add_signature(priv, None, json.dumps(
        {"alg": "EdDSA", "kid": doc["kid"], "typ": "sectorcast-envelope+jws"}))
    compact = token.serialize(compact=True)
    check_tok = jws.JWS()
    check_tok.deserialize(compact)
    try:
        check_tok.verify(pub, alg="EdDSA")
        check("jwcrypto JWS verifies with the exported JWKS", True)
    except Exception as e:  # noqa: BLE001 - report any failure
        check("jwcrypto JWS verifies with the exported JWKS", False, str(e))

    other = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    other_path = os.path.join(d, "py.jwk")
    fd = os.open(other_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, other.export_private().encode())
    os.close(fd)
    r = keygen("kid", other_path)
    check("keygen kid of a jwcrypto key", r.stdout.strip() == other.thumbprint(),
          r.stdout + r.stderr)
    r = keygen("kid", jwks_path)
    check("keygen kid of a JWKS", r.stdout.strip() == doc["kid"], r.stdout + r.stderr)

rfc = jwk.JWK(kty="OKP", crv="Ed25519", x="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
check("RFC 8037 A.3 thumbprint",
      rfc.thumbprint() == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")

sys.exit(1 if failures else 0)
