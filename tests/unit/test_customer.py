"""Customer aggregate: events, forgetting, and upcasting of version 1 data."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
)

from domain.customer import Customer
from domain.errors import InvalidTransition, InvalidValue
from domain.values import CustomerStatus

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def register(**kwargs: object) -> Customer:
    arguments: dict[str, object] = {
        "customer_id": uuid4(),
        "name": "Alan Turing",
        "email": "alan@example.com",
        "phone": "+44 20 7946 0000",
        "occurred_at": T0,
    }
    arguments.update(kwargs)
    return Customer.register(**arguments)  # type: ignore[arg-type]


def mapper() -> Mapper:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    return Mapper(transcoder=transcoder)


# Registered


def test_register_records_every_field() -> None:
    customer_id = uuid4()
    customer = Customer.register(
        customer_id,
        "Alan Turing",
        "alan@example.com",
        "+44 20 7946 0000",
        "en-GB",
        occurred_at=T0,
        command_key="reg-1",
        actor_id="system:import",
    )

    [event] = customer.collect_events()
    assert isinstance(event, Customer.Registered)
    assert type(event).__qualname__ == "Customer.Registered"
    assert event.originator_id == customer_id
    assert event.name == "Alan Turing"
    assert event.email == "alan@example.com"
    assert event.phone == "+44 20 7946 0000"
    assert event.language == "en-GB"
    assert event.occurred_at == T0
    assert event.command_key == "reg-1"
    assert event.actor_id == "system:import"

    assert customer.status is CustomerStatus.ACTIVE
    assert customer.language == "en-GB"
    assert not customer.is_forgotten


def test_register_defaults_to_english_and_no_phone() -> None:
    customer = Customer.register(uuid4(), "Alan", "alan@example.com", occurred_at=T0)

    assert customer.language == "en"
    assert customer.phone is None


@pytest.mark.parametrize("language", ["", "english", "EN", "e", "en_GB"])
def test_register_invalid_language_is_rejected(language: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        register(language=language)

    assert caught.value.field == "language"


def test_register_invalid_email_is_rejected() -> None:
    with pytest.raises(InvalidValue) as caught:
        register(email="alan.example.com")

    assert str(caught.value) == (
        "email 'alan.example.com' is not an e-mail address. Use the form name@example.com."
    )


def test_register_empty_name_is_rejected() -> None:
    with pytest.raises(InvalidValue, match="name must not be empty."):
        register(name="")


def test_register_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        register(occurred_at=datetime(2024, 5, 1, 9, 0))


# ContactDetailsChanged


def test_change_contact_details_records_only_changes() -> None:
    customer = register()
    customer.collect_events()

    customer.change_contact_details(
        name="Alan Turing", email="turing@example.com", occurred_at=at(1), command_key="chg-1"
    )

    [event] = customer.collect_events()
    assert isinstance(event, Customer.ContactDetailsChanged)
    assert event.name is None
    assert event.email == "turing@example.com"
    assert event.phone is None
    assert customer.name == "Alan Turing"
    assert customer.email == "turing@example.com"
    assert customer.phone == "+44 20 7946 0000"


def test_change_contact_details_without_change_records_nothing() -> None:
    customer = register()
    customer.collect_events()

    customer.change_contact_details(name="Alan Turing", occurred_at=at(1))
    customer.change_contact_details(occurred_at=at(2))

    assert customer.collect_events() == []


def test_change_contact_details_invalid_email_is_rejected() -> None:
    customer = register()

    with pytest.raises(InvalidValue):
        customer.change_contact_details(email="nope", occurred_at=at(1))


# Forgotten


def test_forget_erases_personal_data() -> None:
    customer = register()
    customer.collect_events()

    customer.forget(occurred_at=at(1), command_key="gdpr-7", actor_id="system:privacy")

    [event] = customer.collect_events()
    assert isinstance(event, Customer.Forgotten)
    assert event.command_key == "gdpr-7"
    assert customer.name is None
    assert customer.email is None
    assert customer.phone is None
    assert customer.status is CustomerStatus.FORGOTTEN
    assert customer.is_forgotten
    assert customer.to_dict()["status"] == "forgotten"
    assert customer.language == "en"


def test_forget_twice_records_nothing() -> None:
    customer = register()
    customer.forget(occurred_at=at(1))
    customer.collect_events()

    customer.forget(occurred_at=at(2))

    assert customer.collect_events() == []


def test_forgotten_customer_cannot_change_details() -> None:
    customer = register()
    customer.forget(occurred_at=at(1))

    with pytest.raises(InvalidTransition) as caught:
        customer.change_contact_details(name="Alan", occurred_at=at(2))

    assert str(caught.value) == (
        f"Customer {customer.id} is forgotten and cannot change contact details. A forgotten "
        f"customer has no contact details. Register the person again under a new id."
    )
    assert caught.value.state == "forgotten"
    assert caught.value.command == "change_contact_details"


def test_personal_fields_are_declared() -> None:
    assert Customer.Registered.personal_fields == frozenset({"name", "email", "phone"})
    assert Customer.ContactDetailsChanged.personal_fields == frozenset({"name", "email", "phone"})
    assert Customer.Forgotten.personal_fields == frozenset()


# Idempotency


def test_repeated_command_key_triggers_no_event() -> None:
    customer = register()
    customer.change_contact_details(phone="+44 1", occurred_at=at(1), command_key="chg-1")
    customer.collect_events()

    customer.change_contact_details(phone="+44 2", occurred_at=at(2), command_key="chg-1")

    assert customer.collect_events() == []
    assert customer.phone == "+44 1"


def test_business_time_going_backwards_is_rejected() -> None:
    customer = register(occurred_at=at(10))

    with pytest.raises(InvalidValue, match="must not go backwards"):
        customer.forget(occurred_at=at(9))


# Upcasting


def test_registered_event_has_class_version_two() -> None:
    assert Customer.Registered.class_version == 2
    assert Customer.class_version == 2


def test_new_registered_event_is_stored_as_version_two() -> None:
    customer = register()
    [event] = customer.collect_events()

    stored = mapper().to_stored_event(event)

    assert json.loads(stored.state)["class_version"] == 2


def test_version_one_registered_event_gets_english() -> None:
    customer_id = uuid4()
    # The state that version 1 of Customer.Registered stored: no language, no class_version.
    version_one_state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": "2023-03-01T10:00:00+00:00"},
        "originator_topic": "domain.customer:Customer",
        "occurred_at": {"_type_": "datetime_iso", "_data_": "2023-03-01T09:59:00+00:00"},
        "command_key": "legacy-1",
        "actor_id": None,
        "name": "Ada",
        "email": "ada@example.com",
        "phone": None,
    }
    stored = StoredEvent(
        originator_id=customer_id,
        originator_version=1,
        topic="domain.customer:Customer.Registered",
        state=json.dumps(version_one_state).encode(),
    )

    event = mapper().to_domain_event(stored)
    customer = event.mutate(None)

    assert isinstance(event, Customer.Registered)
    assert event.language == "en"
    assert isinstance(customer, Customer)
    assert customer.language == "en"
    assert customer.name == "Ada"
    assert customer.has_applied("legacy-1")


def test_version_one_snapshot_state_gets_english() -> None:
    customer = register(language="de", command_key="reg-1")
    snapshot = Snapshot.take(customer)
    state = dict(snapshot.state)

    # A snapshot of version 1 of the aggregate had no language and no class_version.
    assert state.pop("class_version") == 2
    del state["_language"]
    old_snapshot = Snapshot(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        timestamp=snapshot.timestamp,
        topic=snapshot.topic,
        state=state,
    )

    restored = old_snapshot.mutate(None)

    assert isinstance(restored, Customer)
    assert restored.language == "en"
    assert restored.name == "Alan Turing"
    assert restored.has_applied("reg-1")


def test_current_snapshot_keeps_language() -> None:
    customer = register(language="de")
    customer.collect_events()

    restored = Snapshot.take(customer).mutate(None)

    assert restored.language == "de"
    assert restored == customer
