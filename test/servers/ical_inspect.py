#!/usr/bin/python3
"""Read one email (raw bytes on stdin) as a mail client would (Python's email
package, policy.default) and parse every calendar it carries with a real
iCalendar parser (Debian's python3-icalendar).  Prints JSON: the MIME
structure, the header field names, and per calendar part its content type
and method parameter, whether it is an attachment, the raw-line facts RFC
5545 asks for (CRLF line ends, at most 75 octets a line) and the parsed
calendar: METHOD and each VEVENT's properties."""

import json
import sys
from email import message_from_bytes, policy

import icalendar

raw = sys.stdin.buffer.read()
msg = message_from_bytes(raw, policy=policy.default)


def event_json(ev):
    def text(name):
        v = ev.get(name)
        return None if v is None else str(v)

    def time(name):
        v = ev.get(name)
        return None if v is None else v.dt.isoformat()

    def address(name):
        v = ev.get(name)
        if v is None:
            return None
        vs = v if isinstance(v, list) else [v]
        return [{"value": str(a), "cn": a.params.get("CN")} for a in vs]

    return {
        "uid": text("UID"),
        "sequence": int(ev.get("SEQUENCE")) if ev.get("SEQUENCE") is not None else None,
        "dtstamp": time("DTSTAMP"),
        "dtstart": time("DTSTART"),
        "dtend": time("DTEND"),
        "summary": text("SUMMARY"),
        "location": text("LOCATION"),
        "description": text("DESCRIPTION"),
        "status": text("STATUS"),
        "organizer": address("ORGANIZER"),
        "attendee": address("ATTENDEE"),
    }


result = {
    "content_type": msg.get_content_type(),
    "header_names": sorted({k.lower() for k in msg.keys()}),
    "structure": [],
    "calendars": [],
    "defects": [],
}
for part in msg.walk():
    result["structure"].append(part.get_content_type())
    result["defects"] += [type(d).__name__ for d in part.defects]
    if part.is_multipart():
        continue
    ctype = part.get_content_type()
    if ctype not in ("text/calendar", "application/ics"):
        continue
    data = part.get_payload(decode=True)
    lines = data.split(b"\r\n")
    cal = icalendar.Calendar.from_ical(data)
    result["calendars"].append({
        "content_type": ctype,
        "method_param": part.get_param("method"),
        "charset": part.get_param("charset"),
        "filename": part.get_filename(),
        "attachment": part.get_content_disposition() == "attachment",
        "crlf": data.endswith(b"\r\n") and b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines),
        "max_line_octets": max(len(line) for line in lines),
        "folded_lines": sum(1 for line in lines if line.startswith(b" ")),
        "raw": data.decode("utf-8"),
        "method": str(cal.get("METHOD")),
        "version": str(cal.get("VERSION")),
        "components": [c.name for c in cal.walk()],
        "events": [event_json(ev) for ev in cal.walk("VEVENT")],
    })
print(json.dumps(result))
