"""A real SMTP server for tests (aiosmtpd in its own thread), optionally offering STARTTLS with a
self-signed certificate made by the `openssl` command.

    smtp = SmtpServer(starttls=True)
    smtp.start()
    smtp.client_tls_context()        # an ssl.SSLContext that trusts the test certificate
    smtp.messages()                  # every message received, parsed
    smtp.stop(); smtp.start()        # down for a while, same port
"""

from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from streams.broker import free_port

__all__ = ["Received", "SmtpServer", "openssl_available"]


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # the session had switched to TLS (STARTTLS) before DATA
    raw: bytes  # as received, for checks the parsed message cannot answer


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.server.lock:
            refused = address in self.server.refused
        if refused:  # as Postfix words it, the address included
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        received = Received(
            envelope.mail_from, list(envelope.rcpt_tos), msg, session.ssl is not None, raw
        )
        with self.server.lock:
            self.server.received.append(received)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, *, port: int = 0, starttls: bool = False) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.refused: set[str] = set()  # RCPT TO these gets 550 (no such mailbox)
        self.dir = Path(tempfile.mkdtemp(prefix="smtp-"))
        self._tls: ssl.SSLContext | None = None
        if starttls:
            self._make_certificate()
        self._controller: Controller | None = None

    @property
    def cert_path(self) -> Path:
        return self.dir / "cert.pem"

    def _make_certificate(self) -> None:
        key = self.dir / "key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(key), "-out", str(self.cert_path),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, key)
        self._tls = ctx

    def client_tls_context(self) -> ssl.SSLContext:
        """What a client needs to verify this server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self._tls is not None:
            kwargs["tls_context"] = self._tls
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=10, **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)
