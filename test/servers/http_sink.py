#!/usr/bin/python3
"""A webhook receiver for the worker's integration tests (standard library only).

    http_sink.py LOGFILE PORTFILE [PORT]

Listens on 127.0.0.1 (PORT, default a free one, written to PORTFILE once
listening).  Every request is appended to LOGFILE as one JSON line:
{"t": unix time, "method", "path", "headers": {...}, "body", "status",
 "head_b64": the request line and header fields exactly as received,
 "body_b64": the body's bytes}.

What it answers:
  - by default 200 {"ok": true};
  - /status/NNN answers NNN; /hang/S answers 200 after S seconds;
  - /basic/USER/PASSWORD/... answers 401 unless the request carries HTTP
    Basic credentials USER:PASSWORD (and nothing else in Authorization);
  - a script queued for a path through the control endpoint takes
    precedence, one entry per request, FIFO:
        POST /_control {"path": "/a", "responses": [{"status": 500},
                        {"status": 429, "headers": {"Retry-After": "2"}},
                        {"hang": 3}, {"status": 200}]}
    "path": "*" scripts every path.  Control requests are not logged.
  - POST /_control {"default": {"status": 500}} changes the default.
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log_lock = threading.Lock()
script_lock = threading.Lock()
scripts = {}                 # path -> list of responses
default = {"status": 200}


class RecordingReader:
    """The connection's input, keeping what readline() returned: the request
    line and header fields as they came, before the parser saw them."""

    def __init__(self, raw):
        self.raw = raw
        self.head = bytearray()

    def readline(self, *args):
        line = self.raw.readline(*args)
        self.head += line
        return line

    def read(self, *args):
        return self.raw.read(*args)

    def __getattr__(self, name):
        return getattr(self.raw, name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as real receivers do

    def setup(self):
        super().setup()
        self.rfile = RecordingReader(self.rfile)

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reply(self, status, body=b'{"ok":true}', headers=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _control(self, body):
        global default
        req = json.loads(body or b"{}")
        with script_lock:
            if "default" in req:
                default = req["default"]
            if "responses" in req:
                scripts.setdefault(req.get("path", "*"), []).extend(req["responses"])
            if req.get("reset"):
                scripts.clear()
                default = {"status": 200}
        self._reply(200)

    def _pick(self):
        path = self.path.split("?")[0]
        with script_lock:
            for key in (path, "*"):
                if scripts.get(key):
                    return scripts[key].pop(0)
            if path.startswith("/status/"):
                return {"status": int(path.split("/")[2])}
            if path.startswith("/hang/"):
                return {"hang": float(path.split("/")[2])}
            if path.startswith("/basic/"):
                user, password = path.split("/")[2:4]
                good = "Basic " + base64.b64encode(
                    (user + ":" + password).encode()).decode()
                if self.headers.get_all("Authorization") != [good]:
                    return {"status": 401, "headers": {"WWW-Authenticate": 'Basic realm="sink"'}}
            return dict(default)

    def _handle(self):
        head = bytes(self.rfile.head)
        self.rfile.head = bytearray()
        body = self._body()
        if self.path.startswith("/_control"):
            return self._control(body)
        r = self._pick()
        status = r.get("status", 200)
        entry = {
            "t": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "status": status,
            "head_b64": base64.b64encode(head).decode(),
            "body_b64": base64.b64encode(body).decode(),
        }
        with log_lock:
            with open(sys.argv[1], "a") as f:
                f.write(json.dumps(entry) + "\n")
        if r.get("hang"):
            time.sleep(r["hang"])
        try:
            self._reply(status, r.get("body", '{"ok":true}').encode(), r.get("headers"))
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_POST = do_PUT = do_PATCH = do_GET = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    server = Server(("127.0.0.1", port), Handler)
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()


if __name__ == "__main__":
    main()
