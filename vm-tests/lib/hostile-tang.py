"""A Tang impostor for the hostile-server scenarios (127.0.0.1 only).

offcurve: answers /rec with a well-formed ECMR JWK whose point is not on P-521,
          so a client that skips the on-curve check would do math on it.
garbage:  answers every request with 200 and a body that is not JSON.
"""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def b64(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(66, "big")).rstrip(b"=").decode()


OFFCURVE = json.dumps({
    "alg": "ECMR", "crv": "P-521", "key_ops": ["deriveKey"], "kty": "EC",
    "x": b64(1), "y": b64(1),  # y^2 = x^3 - 3x + b does not hold for (1, 1)
}).encode()
GARBAGE = b"{\"kty\": \"EC\", \"crv\": <<not json>>\x00\xff"


class Handler(BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = OFFCURVE if MODE == "offcurve" else GARBAGE
        self.send_response(200)
        self.send_header("Content-Type", "application/jwk+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = answer
    do_POST = answer

    def log_message(self, fmt, *args):
        sys.stderr.write("hostile: " + fmt % args + "\n")


PORT, MODE = int(sys.argv[1]), sys.argv[2]
HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
