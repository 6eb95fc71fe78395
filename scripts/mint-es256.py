#!/usr/bin/env python3
"""ES256 test tokens for a service with USER_AUTH=jwt JWT_ALGORITHM=ES256 (the benchmark of
scripts/bench-user-auth.sh): makes a P-256 key pair for this run, writes its public key as a JWKS
document, and prints one token per line for users FIRST..FIRST+COUNT-1 (line N for user N when
FIRST is 1), valid for TTL seconds. `firstcome token` signs HS256 only; this uses the system's
python3-cryptography, so nothing is installed.

Usage: mint-es256.py <jwks output file> <first user> <count> [ttl seconds, default 3600]
"""

import base64
import json
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# The audience the service is started with (a JWKS requires JWT_AUDIENCE: docs/design.md §17).
AUDIENCE = "firstcome-bench"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main(jwks_path: str, first: int, count: int, ttl: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "bench",
        "x": b64(numbers.x.to_bytes(32, "big")), "y": b64(numbers.y.to_bytes(32, "big")),
    }
    with open(jwks_path, "w") as out:
        json.dump({"keys": [jwk]}, out)
    header = b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench"}).encode())
    expires = int(time.time()) + ttl
    lines = []
    for user in range(first, first + count):
        claims = b64(json.dumps({"sub": str(user), "exp": expires, "aud": AUDIENCE}).encode())
        signing_input = f"{header}.{claims}".encode()
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        lines.append(f"{header}.{claims}.{signature}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) == 5 else 3600)
