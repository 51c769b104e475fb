"""Errors of message delivery. Retriability is a property of the class.

The dispatcher retries a retriable error with backoff until the policy's last
attempt, and marks the message failed at once after a permanent one.
"""

from __future__ import annotations

from typing import ClassVar


class DeliveryError(Exception):
    """Sending one outbox message failed."""

    retriable: ClassVar[bool] = True


class TemporaryDeliveryError(DeliveryError):
    """The server or the network failed in a way that may pass: a timeout, a 5xx, SMTP 4xx."""

    retriable = True


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help: the address was rejected, the configuration has no destination."""

    retriable = False


class RecipientNotKnownYet(TemporaryDeliveryError):
    """The event that gives the recipient's address has not been projected yet."""


class RecipientForgotten(DeliveryError):
    """The customer asked to be forgotten, so the message is cancelled instead of sent."""

    retriable = False
