#!/usr/bin/python3
"""An SMTP server for the email channel's integration tests (aiosmtpd).

    smtp_sink.py LOGFILE PORTFILE CERTFILE KEYFILE

Run with Debian's /usr/bin/python3, which has python3-aiosmtpd.  Listens on
127.0.0.1, three free ports, written to PORTFILE as JSON once listening:

  "starttls"  offers STARTTLS (CERTFILE/KEYFILE) and AUTH PLAIN/LOGIN,
              which it requires, and only over TLS;
  "smtps"     TLS from the first byte, AUTH required;
  "plain"     neither TLS nor AUTH.

Credentials: user "mailer", password "s3cret".

Appends one JSON line to LOGFILE per event:
  {"event": "connect", "server", "t"}                 a connection opened
  {"event": "message", "server", "t", "peer": [host, port], "tls", "user",
   "mail_from", "rcpt_tos", "data_b64", "queue_id"}  a message accepted

Recipients decide what the server answers, to test failures:
  tempfail...@   451 4.3.0 (transient), always
  permfail...@   550 5.1.1 (permanent)
  flakyN-...@    451 4.3.0 the first N times that address is seen, then OK
Accepted messages get "250 2.0.0 Ok: queued as Q<n>".
"""

import asyncio
import base64
import json
import os
import re
import ssl
import sys
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult

USER, PASSWORD = b"mailer", b"s3cret"

log_lock = threading.Lock()
counters = {"queue": 0}
seen = {}


def log(entry):
    entry["t"] = time.time()
    with log_lock:
        with open(sys.argv[1], "a") as f:
            f.write(json.dumps(entry) + "\n")


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER and auth_data.password == PASSWORD
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class Handler:
    def __init__(self, name, implicit_tls):
        self.name = name
        self.implicit_tls = implicit_tls

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if local.startswith("permfail"):
            return "550 5.1.1 No such user here"
        m = re.match(r"flaky(\d+)-", local)
        if m:
            seen[address] = seen.get(address, 0) + 1
            if seen[address] <= int(m.group(1)):
                return "451 4.3.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        counters["queue"] += 1
        queue_id = "Q%d" % counters["queue"]
        log({
            "event": "message",
            "server": self.name,
            "peer": list(session.peer[:2]),
            "tls": self.implicit_tls or session.ssl is not None,
            "user": session.auth_data.login.decode() if session.authenticated else None,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data_b64": base64.b64encode(envelope.original_content).decode(),
            "queue_id": queue_id,
        })
        return "250 2.0.0 Ok: queued as " + queue_id


def tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    return ctx


def main():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ports = {}
    servers = {
        # name: (implicit TLS context, SMTP keyword arguments)
        "starttls": (None, dict(tls_context=tls_context(), authenticator=authenticator,
                                auth_required=True, auth_require_tls=True)),
        "smtps": (tls_context(), dict(authenticator=authenticator, auth_required=True,
                                      auth_require_tls=False)),
        "plain": (None, dict()),
    }
    for name, (implicit, kwargs) in servers.items():
        def factory(name=name, implicit=implicit, kwargs=kwargs):
            log({"event": "connect", "server": name})
            return SMTP(Handler(name, implicit is not None), hostname="sink.test",
                        loop=loop, **kwargs)
        server = loop.run_until_complete(
            loop.create_server(factory, "127.0.0.1", 0, ssl=implicit))
        ports[name] = server.sockets[0].getsockname()[1]

    with open(sys.argv[2] + ".tmp", "w") as f:
        json.dump(ports, f)
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
    loop.run_forever()


if __name__ == "__main__":
    main()
