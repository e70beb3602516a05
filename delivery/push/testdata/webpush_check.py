"""Checks Web Push requests with implementations that are not Parley's.

Reads a JSON list on stdin, one object per request the test's push service
received: body (base64 of the request body), authorization (the header),
endpoint, private_key (the subscription's P-256 private scalar, base64url),
auth (the subscription's auth secret, base64url) and vapid_public_key
(the server's, base64url). Writes a JSON list: per request, the decrypted
plaintext (http_ece, RFC 8188 aes128gcm as RFC 8291 uses it) and the VAPID
(RFC 8292) token's claims once its ES256 signature verified against the
server's public key. Any failure is an exception: a non-zero exit.
"""
import base64
import json
import sys
import time

import http_ece
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from urllib.parse import urlsplit


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_vapid(authorization, endpoint, server_key):
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid", "Authorization scheme is %r, not vapid" % scheme
    fields = dict(p.strip().split("=", 1) for p in params.split(","))
    assert b64url(fields["k"]) == b64url(server_key), "k is not the server's VAPID key"
    header_b64, claims_b64, sig_b64 = fields["t"].split(".")
    header = json.loads(b64url(header_b64))
    assert header["alg"] == "ES256", "JWT alg is %r" % header["alg"]
    sig = b64url(sig_b64)
    assert len(sig) == 64, "ES256 signature is %d bytes" % len(sig)
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url(server_key))
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    # Raises InvalidSignature when it does not verify.
    pub.verify(der, (header_b64 + "." + claims_b64).encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(b64url(claims_b64))
    u = urlsplit(endpoint)
    assert claims["aud"] == "%s://%s" % (u.scheme, u.netloc), "aud %r" % claims["aud"]
    now = time.time()
    assert now < claims["exp"] <= now + 24 * 3600, "exp %r not within 24 h" % claims["exp"]
    assert claims["sub"].startswith(("mailto:", "https:")), "sub %r" % claims["sub"]
    return claims


def main():
    out = []
    for r in json.load(sys.stdin):
        d = int.from_bytes(b64url(r["private_key"]), "big")
        key = ec.derive_private_key(d, ec.SECP256R1())
        plain = http_ece.decrypt(
            base64.b64decode(r["body"]),
            private_key=key,
            auth_secret=b64url(r["auth"]),
            version="aes128gcm",
        )
        claims = check_vapid(r["authorization"], r["endpoint"], r["vapid_public_key"])
        out.append({"plaintext": plain.decode(), "claims": claims})
    json.dump(out, sys.stdout)


main()
