"""A real SMTP server for crates/gemba/tests/notify.rs, built on aiosmtpd (pinned in
scripts/requirements-test.txt). It requires STARTTLS and AUTH (LOGIN/PLAIN) with the given user and
password, and prints every message it accepts as one JSON line on stdout:
{"from", "to", "tls", "subject", "message_id", "delivery", "body"} (headers and body decoded). "READY" is printed when it
listens. It stops when its stdin closes.

Usage: smtp_sink.py PORT CERT_PEM KEY_PEM USER PASSWORD
"""

import email
import email.policy
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        line = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "delivery": str(msg["x-gemba-delivery"]),
            "body": msg.get_content(),
        }
        print(json.dumps(line), flush=True)
        return "250 OK"


def main():
    port, cert, key, user, password = sys.argv[1:6]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok)

    controller = Controller(
        Sink(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
        decode_data=False,
    )
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
