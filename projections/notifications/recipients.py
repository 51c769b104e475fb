"""Resolve an outbox recipient reference to addresses when the message is sent.

References such as "agent:<uuid>" are resolved from the projection's state tables and
the rules file at send time, not when the notification fires. So a notification whose
agent or customer event has not been projected yet is written at once, the same for
every arrival order. Sending it waits, with the usual retry backoff, until the address
is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from projections.notifications.errors import PermanentDeliveryError, RecipientForgotten, RecipientNotKnownYet
from projections.notifications.model import RuleSet


@dataclass(frozen=True)
class Destination:
    """Destination of one message. `addresses` contains e-mail addresses, or one webhook URL for Slack."""

    addresses: tuple[str, ...] = field(repr=False)
    label: str  # safe to log and store: e-mail addresses, never a webhook URL
    name: str | None = None
    language: str | None = None


def resolve(
    conn: psycopg.Connection,
    schema: str,
    rules: RuleSet,
    reference: str,
    channel: str,
    default_slack_webhook: str = "",
) -> Destination:
    """Return the destination of `reference` on `channel`; raise a DeliveryError when there is none."""
    kind, _, key = reference.partition(":")
    if kind == "agent":
        return _agent(conn, schema, key)
    if kind == "customer":
        return _customer(conn, schema, key)
    if kind == "email":
        return Destination(addresses=(key,), label=key)
    if kind == "admins":
        if not rules.admins:
            raise PermanentDeliveryError(f"no admins are listed; add e-mail addresses under admins in {rules.path}")
        return Destination(addresses=rules.admins, label=", ".join(rules.admins))
    if kind == "slack":
        url = rules.slack_webhooks.get(key)
        if not url:
            raise PermanentDeliveryError(f"no webhook named {key!r}; add it under slack_webhooks in {rules.path}")
        return Destination(addresses=(url,), label=reference)
    if kind == "department":
        return _department_webhook(rules, key, reference, default_slack_webhook)
    if kind == "team_lead":
        return _team_lead(rules, key, reference, channel, default_slack_webhook)
    raise PermanentDeliveryError(f"recipient reference {reference!r} has an unknown kind {kind!r}")


def _agent(conn: psycopg.Connection, schema: str, agent_id: str) -> Destination:
    row = conn.execute(
        sql.SQL("SELECT name, email FROM {}.agents WHERE agent_id = %s").format(sql.Identifier(schema)), (agent_id,)
    ).fetchone()
    if row is None:
        raise RecipientNotKnownYet(f"agent {agent_id} is not known yet: its Agent.Hired event has not been projected")
    name, email = row
    if not email:
        raise PermanentDeliveryError(f"agent {agent_id} has no e-mail address")
    return Destination(addresses=(email,), label=email, name=name)


def _customer(conn: psycopg.Connection, schema: str, customer_id: str) -> Destination:
    row = conn.execute(
        sql.SQL("SELECT name, email, language, forgotten FROM {}.customers WHERE customer_id = %s").format(
            sql.Identifier(schema)
        ),
        (customer_id,),
    ).fetchone()
    if row is None:
        raise RecipientNotKnownYet(
            f"customer {customer_id} is not known yet: its Customer.Registered event has not been projected"
        )
    name, email, language, forgotten = row
    if forgotten:
        raise RecipientForgotten(f"customer {customer_id} has been forgotten")
    if not email:
        raise PermanentDeliveryError(f"customer {customer_id} has no e-mail address")
    return Destination(addresses=(email,), label=email, name=name, language=language)


def _department_webhook(rules: RuleSet, department: str, reference: str, default_slack_webhook: str) -> Destination:
    contacts = rules.departments.get(department)
    url = (contacts.slack_webhook if contacts else None) or default_slack_webhook
    if not url:
        raise PermanentDeliveryError(
            f"no Slack webhook for department {department!r}: set departments.{department}.slack_webhook "
            f"in {rules.path} or SLACK_WEBHOOK_URL"
        )
    return Destination(addresses=(url,), label=reference, name=department)


def _team_lead(
    rules: RuleSet, department: str, reference: str, channel: str, default_slack_webhook: str
) -> Destination:
    contacts = rules.departments.get(department)
    if channel == "email":
        email = contacts.team_lead_email if contacts else None
        if not email:
            raise PermanentDeliveryError(
                f"no team lead e-mail for department {department!r}: set "
                f"departments.{department}.team_lead_email in {rules.path}"
            )
        return Destination(addresses=(email,), label=email)

    # Without a webhook of its own, the team lead is reached in the department's channel.
    url = default_slack_webhook
    if contacts is not None:
        url = contacts.team_lead_slack_webhook or contacts.slack_webhook or default_slack_webhook
    if not url:
        raise PermanentDeliveryError(
            f"no Slack webhook for the team lead of {department!r}: set "
            f"departments.{department}.team_lead_slack_webhook in {rules.path} or SLACK_WEBHOOK_URL"
        )
    return Destination(addresses=(url,), label=reference, name=f"{department} team lead")
