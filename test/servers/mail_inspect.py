#!/usr/bin/python3
"""Parse one email (raw bytes on stdin) with Python's email package and
policy.default, as a mail client would, and print what the tests check as
JSON: decoded header fields, the raw header lines, the MIME structure and
each part's decoded content (line ends as "\n", as a client shows them), and any defects the parser found."""

import json
import sys
from email import message_from_bytes, policy

raw = sys.stdin.buffer.read()
msg = message_from_bytes(raw, policy=policy.default)

head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
result = {
    "raw_header_lines": head.split("\r\n"),
    "headers": {},
    "addresses": {},
    "content_type": msg.get_content_type(),
    "parts": [],
    "defects": [],
}
for name in set(msg.keys()):
    result["headers"][name.lower()] = [str(v) for v in msg.get_all(name)]
for name in ("From", "To", "Cc", "Reply-To", "Bcc"):
    if msg[name] is not None:
        result["addresses"][name.lower()] = [
            {"name": a.display_name, "address": a.addr_spec} for a in msg[name].addresses]
if msg["Date"] is not None:
    result["date"] = msg["Date"].datetime.timestamp()
for part in msg.walk():
    result["defects"] += [type(d).__name__ for d in part.defects]
    if part.is_multipart():
        continue
    result["parts"].append({
        "content_type": part.get_content_type(),
        "charset": part.get_content_charset(),
        "cte": part.get("Content-Transfer-Encoding"),
        "content": part.get_content().replace("\r\n", "\n"),
    })
for kind in ("plain", "html"):
    body = msg.get_body((kind,))
    result[kind] = body.get_content().replace("\r\n", "\n") if body is not None else None
print(json.dumps(result))
