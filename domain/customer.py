"""The Customer aggregate: contact details of a person who opens tickets.

Forgetting a customer erases name, e-mail and phone from the aggregate's state. The
stored events keep them, so audit output must redact the fields that each event
class lists in `personal_fields` once the customer is forgotten.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.aggregate import HelpdeskAggregate, creation_metadata
from domain.errors import InvalidValue
from domain.validation import email_address, optional_text, text, uuid_value
from domain.values import CustomerStatus

DEFAULT_LANGUAGE = "en"

# A BCP 47 language tag in its common short form: "en", "de", "pt-BR", "zh-Hant".
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

PERSONAL_FIELDS = frozenset({"name", "email", "phone"})


class Customer(HelpdeskAggregate):
    # Version 1 of the aggregate had no language. Snapshots record the class version,
    # and eventsourcing calls upcast_v1_v2 on the state of an older snapshot.
    class_version = 2

    _actions = {
        "change_contact_details": "change contact details",
    }

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["_language"] = DEFAULT_LANGUAGE

    class Event(HelpdeskAggregate.Event):
        pass

    class Registered(Event, HelpdeskAggregate.Created):
        # Version 1 had no `language`. Customers registered before then are taken to speak English.
        class_version = 2

        name: str
        email: str
        phone: str | None
        language: str

        personal_fields = PERSONAL_FIELDS

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = DEFAULT_LANGUAGE

        def apply(self, aggregate: Any) -> None:
            aggregate._name = self.name
            aggregate._email = self.email
            aggregate._phone = self.phone
            aggregate._language = self.language
            aggregate._status = CustomerStatus.ACTIVE

    class ContactDetailsChanged(Event):
        """Changed contact details. A field that did not change is None."""

        name: str | None
        email: str | None
        phone: str | None

        personal_fields = PERSONAL_FIELDS

        def apply(self, aggregate: Any) -> None:
            if self.name is not None:
                aggregate._name = self.name
            if self.email is not None:
                aggregate._email = self.email
            if self.phone is not None:
                aggregate._phone = self.phone

    class Forgotten(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._name = None
            aggregate._email = None
            aggregate._phone = None
            aggregate._status = CustomerStatus.FORGOTTEN

    # Commands.

    @classmethod
    def register(
        cls,
        customer_id: UUID | str,
        name: str,
        email: str,
        phone: str | None = None,
        language: str = DEFAULT_LANGUAGE,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> Customer:
        return cls._create(
            cls.Registered,
            id=uuid_value(customer_id, field="customer_id"),
            name=text(name, field="name"),
            email=email_address(email),
            phone=optional_text(phone, field="phone"),
            language=language_tag(language),
            **creation_metadata(occurred_at, command_key, actor_id),
        )

    def change_contact_details(
        self,
        name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Change the given details. None leaves a detail as it is, so a phone cannot be removed."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("change_contact_details", {CustomerStatus.ACTIVE})

        new_name = optional_text(name, field="name")
        new_email = None if email is None else email_address(email)
        new_phone = optional_text(phone, field="phone")
        changes = {
            "name": None if new_name == self._name else new_name,
            "email": None if new_email == self._email else new_email,
            "phone": None if new_phone == self._phone else new_phone,
        }
        if all(value is None for value in changes.values()):
            return

        self._trigger(
            self.ContactDetailsChanged,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            **changes,
        )

    def forget(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Erase name, e-mail and phone from the state. Forgetting twice changes nothing.

        NOTE: the Registered and ContactDetailsChanged events in the event store
        still contain the erased values. Readers must redact them, as the audit
        command does. Removing them from storage needs crypto-shredding, which this
        model does not do.
        """
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        if self.is_forgotten:
            return
        self._trigger(self.Forgotten, occurred_at=at, command_key=command_key, actor_id=actor_id)

    # State.

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def email(self) -> str | None:
        return self._email

    @property
    def phone(self) -> str | None:
        return self._phone

    @property
    def language(self) -> str:
        return str(self._language)

    @property
    def status(self) -> CustomerStatus:
        return CustomerStatus(self._status)

    @property
    def is_forgotten(self) -> bool:
        return self.status is CustomerStatus.FORGOTTEN

    def to_dict(self) -> dict[str, Any]:
        """Return the public state, for audit output."""
        return {
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "language": self.language,
            "status": self.status,
            "last_occurred_at": self.last_occurred_at,
        }

    # Guards.

    def _state_phrase(self) -> str:
        return f"is {self.status}"

    def _transition_hint(self, command: str, allowed: Collection[StrEnum]) -> str:
        if self.is_forgotten:
            return "A forgotten customer has no contact details. Register the person again under a new id."
        return super()._transition_hint(command, allowed)


def language_tag(value: object) -> str:
    """Return `value` if it is a short BCP 47 language tag such as "en" or "pt-BR"."""
    tag = text(value, field="language").strip()
    if not _LANGUAGE_TAG.match(tag):
        raise InvalidValue(
            f"language {value!r} is not a language tag. Use a BCP 47 tag such as 'en' or 'pt-BR'.",
            field="language",
            value=value,
        )
    return tag
