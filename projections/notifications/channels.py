"""Send one message by e-mail (smtplib) or to a Slack incoming webhook (urllib)."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from projections.notifications.errors import PermanentDeliveryError, TemporaryDeliveryError


@dataclass(frozen=True)
class OutgoingMessage:
    """A rendered message. `key` is the outbox dedup key, sent along so receivers can drop repeats."""

    key: str
    addresses: tuple[str, ...] = field(repr=False)
    body: str
    subject: str | None = None


class Sender(Protocol):
    def send(self, message: OutgoingMessage) -> None:
        """Deliver the message or raise a DeliveryError."""
        ...


class SmtpSender:
    """Hands e-mail to an SMTP server without authentication or TLS (a local relay)."""

    def __init__(self, host: str, port: int, from_address: str, timeout_seconds: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.from_address = from_address
        self.timeout_seconds = timeout_seconds

    def send(self, message: OutgoingMessage) -> None:
        email = EmailMessage()
        email["From"] = self.from_address
        email["To"] = ", ".join(message.addresses)
        email["Subject"] = message.subject or ""
        email["Message-ID"] = make_msgid(domain="helpdesk.notifications")
        email["X-Notification-Key"] = message.key
        email.set_content(message.body)

        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            failure = PermanentDeliveryError if all(code >= 500 for code in codes) else TemporaryDeliveryError
            raise failure(f"SMTP server {self.host}:{self.port} rejected the recipients: {error.recipients}") from error
        except smtplib.SMTPResponseException as error:
            # SMTP reply codes: 4xx is a transient failure, 5xx a permanent one (RFC 5321, 4.2.1).
            failure = PermanentDeliveryError if error.smtp_code >= 500 else TemporaryDeliveryError
            text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else error.smtp_error
            raise failure(f"SMTP server {self.host}:{self.port} replied {error.smtp_code} {text}") from error
        except (OSError, smtplib.SMTPException) as error:
            raise TemporaryDeliveryError(
                f"sending e-mail through {self.host}:{self.port} failed: {type(error).__name__}: {error}"
            ) from error


class SlackSender:
    """Posts {"text": ...} as JSON to the webhook URL in `message.addresses[0]`."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds

    def send(self, message: OutgoingMessage) -> None:
        request = urllib.request.Request(
            message.addresses[0],
            data=json.dumps({"text": message.body}).encode("utf-8"),
            headers={"Content-Type": "application/json", "X-Notification-Key": message.key},
            method="POST",
        )
        # Error messages leave out the URL, because the webhook URL is the credential.
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(200).decode("utf-8", errors="replace")
            failure = TemporaryDeliveryError if error.code == 429 or error.code >= 500 else PermanentDeliveryError
            raise failure(f"Slack webhook returned HTTP {error.code}: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TemporaryDeliveryError(f"posting to the Slack webhook failed: {reason}") from error
