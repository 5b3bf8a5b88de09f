#!/usr/bin/python3
"""Stand-ins for the HTTP providers of the SMS and Slack channels, for the
integration tests (standard library only).

    provider_sink.py LOGFILE PORTFILE

Listens on 127.0.0.1, a free port written to PORTFILE once listening.
Every request is appended to LOGFILE as one JSON line, as test/servers/http_sink.py
does: {"t", "method", "path", "headers", "body", "status", "response"}.

It checks requests as the real services would and answers in their
shapes: success bodies, error bodies and status codes.

Twilio   POST /2010-04-01/Accounts/{AccountSid}/Messages.json
         HTTP Basic {AccountSid}:twilio-token, form To, From or
         MessagingServiceSid, Body.  201 with the message resource (keys in
         Twilio's alphabetical order, the body echoed before "sid", and
         "num_segments" counted here independently of the extension).
         Errors as Twilio sends them: 401 code 20003 (bad credentials),
         400 code 21604/21602 (To or Body missing), 400 code 21211
         (invalid To).  By number:
           +48999...  400, 21211 invalid number
           +48610...  400, 21610 unsubscribed recipient
           +48429...  429, 20429 the first time, then accepted
           +48503...  503 the first time, then accepted

SMSAPI   POST /sms.do, "Authorization: Bearer smsapi-token", form to,
         message, from, encoding=utf-8, format=json, idx, check_idx=1.
         200 {"count": 1, "list": [{"id", "points", "number", ..., "idx",
         "parts"}]}.  Errors are HTTP 200 with {"error": N, "message"}: 101
         (authorization), 13 (no valid number), 53 (idx already used with
         check_idx=1), 11 (no message), 201 (internal error).  By number:
           48999...  error 13
           48201...  error 201 the first time, then accepted
           48777...  accepted, but the answer comes 3 s late the first time

Slack    POST /services/T.../B.../...: JSON with "text", answers 200 "ok".
         Paths ending in /invalid answer 400 invalid_payload, /gone 404
         no_service, /busy 429 (Retry-After: 1) the first time then ok,
         /broken 500 the first time then ok.

Generic  anything under /gw/: 200 {"result": {"id": "G<n>"}}; /gw/fail500
         answers 500, /gw/fail400 400.
"""

import base64
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TWILIO_TOKEN = "twilio-token"
SMSAPI_TOKEN = "smsapi-token"

lock = threading.Lock()
seen = {}           # (what, key) -> times seen
idx_used = set()
counter = [0]

GSM7 = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = "\f^{}\\[~]|€"


def segments(text):
    """SMS parts as an operator counts them (GSM-7 or UCS-2)."""
    if all(c in GSM7 or c in GSM7_EXT for c in text):
        widths, single, per = [2 if c in GSM7_EXT else 1 for c in text], 160, 153
    else:
        widths, single, per = [2 if ord(c) > 0xFFFF else 1 for c in text], 70, 67
    if sum(widths) <= single:
        return 1
    n, used = 1, 0
    for w in widths:
        if used + w > per:
            n, used = n + 1, 0
        used += w
    return n


def first_time(what, key):
    with lock:
        seen[(what, key)] = seen.get((what, key), 0) + 1
        return seen[(what, key)] == 1


def next_id():
    with lock:
        counter[0] += 1
        return counter[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, content_type="application/json", headers=None, delay=0):
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        entry = {
            "t": time.time(), "method": self.command, "path": self.path,
            "headers": dict(self.headers.items()),
            "body": self.raw_body.decode("utf-8", "replace"),
            "status": status, "response": data.decode("utf-8", "replace"),
        }
        with lock:
            with open(sys.argv[1], "a") as f:
                f.write(json.dumps(entry) + "\n")
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def form(self):
        return {k: v[0] for k, v in parse_qs(self.raw_body.decode(), keep_blank_values=True).items()}

    # ---- Twilio ----

    def twilio(self, sid):
        def error(status, code, message):
            return self.reply(status, {"code": code, "message": message,
                                       "more_info": "https://www.twilio.com/docs/errors/%d" % code,
                                       "status": status})

        auth = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(("%s:%s" % (sid, TWILIO_TOKEN)).encode()).decode()
        if auth != expected:
            return error(401, 20003, "Authenticate")
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return error(400, 21603, "Unsupported content type")
        f = self.form()
        to, body = f.get("To"), f.get("Body")
        if not to:
            return error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return error(400, 21602, "Message body is required.")
        if not (f.get("From") or f.get("MessagingServiceSid")):
            return error(400, 21603, "A 'From' phone number is required.")
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to) or to.startswith("+48999"):
            return error(400, 21211, "The 'To' number %s is not a valid phone number." % to)
        if to.startswith("+48610"):
            return error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to.startswith("+48429") and first_time("twilio", to):
            return error(429, 20429, "Too Many Requests")
        if to.startswith("+48503") and first_time("twilio", to):
            return error(503, 20500, "Service Unavailable")
        n = next_id()
        msid = "SM%032x" % n
        now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
        resource = {
            "account_sid": sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": f.get("From"), "messaging_service_sid": f.get("MessagingServiceSid"),
            "num_media": "0", "num_segments": str(segments(body)),
            "price": None, "price_unit": "USD", "sid": msid, "status": "queued",
            "subresource_uris": {"media": "/2010-04-01/Accounts/%s/Messages/%s/Media.json" % (sid, msid)},
            "to": to, "uri": "/2010-04-01/Accounts/%s/Messages/%s.json" % (sid, msid),
        }
        return self.reply(201, resource)

    # ---- SMSAPI ----

    def smsapi(self):
        if self.headers.get("Authorization") != "Bearer " + SMSAPI_TOKEN:
            return self.reply(200, {"error": 101, "message": "Authorization failed"})
        f = self.form()
        to, message, idx = f.get("to", ""), f.get("message"), f.get("idx")
        if not message:
            return self.reply(200, {"error": 11, "message": "Message too long or there is no message"})
        if f.get("format") != "json" or f.get("encoding") != "utf-8":
            return self.reply(200, {"error": 8, "message": "Error in request"})
        if not re.fullmatch(r"\d{9,15}", to) or to.startswith("48999"):
            return self.reply(200, {"invalid_numbers": [{"number": to, "submitted_number": to,
                                                        "message": "Invalid phone number"}],
                                    "error": 13, "message": "No correct phone numbers"})
        if f.get("check_idx") == "1" and idx:
            with lock:
                used = idx in idx_used
                idx_used.add(idx)
            if used:
                return self.reply(200, {"error": 53, "message": "Not unique idx parameter, message with "
                                        "the same idx has been already sent and check_idx=1"})
        if to.startswith("48201") and first_time("smsapi", to):
            with lock:
                idx_used.discard(idx)
            return self.reply(200, {"error": 201, "message": "System internal error"})
        delay = 3 if to.startswith("48777") and first_time("smsapi", to) else 0
        n = next_id()
        parts = segments(message)
        return self.reply(200, {"count": 1, "list": [{
            "id": "%024X" % (0x6C0FFEE00000 + n), "points": round(0.16 * parts, 2),
            "number": to, "date_sent": int(time.time()), "submitted_number": to,
            "status": "QUEUE", "error": None, "idx": idx, "parts": parts}]}, delay=delay)

    # ---- Slack ----

    def slack(self):
        path = self.path
        try:
            payload = json.loads(self.raw_body)
        except ValueError:
            payload = None
        if path.endswith("/invalid") or not isinstance(payload, dict) or "text" not in payload:
            return self.reply(400, "invalid_payload", "text/plain")
        if path.endswith("/gone"):
            return self.reply(404, "no_service", "text/plain")
        if path.endswith("/busy") and first_time("slack", path):
            return self.reply(429, "rate_limited", "text/plain", {"Retry-After": "1"})
        if path.endswith("/broken") and first_time("slack", path):
            return self.reply(500, "internal_error", "text/plain")
        return self.reply(200, "ok", "text/html")

    def do_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.raw_body = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        m = re.fullmatch(r"/2010-04-01/Accounts/([A-Za-z0-9]+)/Messages\.json", path)
        if m and self.command == "POST":
            return self.twilio(m.group(1))
        if path == "/sms.do" and self.command == "POST":
            return self.smsapi()
        if path.startswith("/services/") and self.command == "POST":
            return self.slack()
        if path.startswith("/gw/"):
            if path.startswith("/gw/fail500"):
                return self.reply(500, {"error": "unavailable"})
            if path.startswith("/gw/fail400"):
                return self.reply(400, {"error": "bad number"})
            return self.reply(200, {"result": {"id": "G%d" % next_id()}})
        return self.reply(404, {"error": "no such endpoint"})

    do_GET = do_POST = do_PUT = do_PATCH = do_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    server = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    server.serve_forever()


if __name__ == "__main__":
    main()
