"""A local stand-in for OneSignal's ``POST /notifications``, for ``benchjobs``' push
workloads: it answers as OneSignal does when it accepts a request (``{"id": ...}``), with
keep-alive connections, and counts requests and recipients (``GET /stats``). It checks
what a real app would reject (no ``Key`` authorization, no app id, no idempotency key, no
target) with a 400, so a workload that sends malformed requests shows up as failures.

Run by the benchmark as ``python -m bench.onesignal_standin``; it prints its port.
"""

import json
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.recipients = 0
        self.rejected = 0

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"requests": self.requests, "recipients": self.recipients,
                    "rejected": self.rejected}


STATS = Stats()


def recipients(body: dict) -> int | None:
    """How many users or devices the request targets; ``None`` when it is malformed."""
    if not body.get("app_id") or not body.get("idempotency_key"):
        return None
    external = (body.get("include_aliases") or {}).get("external_id")
    subscriptions = body.get("include_subscription_ids")
    targets = external if external is not None else subscriptions
    return len(targets) if isinstance(targets, list) and targets else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as api.onesignal.com
    # Headers and body are two writes: with Nagle on, the body would wait for the client's
    # delayed ACK of the headers (40 ms per request).
    disable_nagle_algorithm = True

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        if self.path == "/stats":
            self._answer(200, STATS.as_dict())
        else:
            self._answer(404, {"errors": ["not found"]})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != "/notifications":
            self._answer(404, {"errors": ["not found"]})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        count = recipients(body) if isinstance(body, dict) else None
        authorized = (self.headers.get("Authorization") or "").startswith("Key ")
        with STATS.lock:
            STATS.requests += 1
            if count is None or not authorized:
                STATS.rejected += 1
            else:
                STATS.recipients += count
        if not authorized:
            self._answer(403, {"errors": ["Access denied.  Please include an 'Authorization: "
                                          "Key' header with a valid API key."]})
        elif count is None:
            self._answer(400, {"errors": ["Malformed request"]})
        else:
            self._answer(200, {"id": str(uuid.uuid4()), "external_id": None})

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # one line per request would cost more than the answer


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.exit(0)


if __name__ == "__main__":
    main()
