"""In-memory agents and customers for the tickets being imported.

Each agent and customer is loaded from the event store, or created in memory, the first
time a ticket needs it. Its new events stay pending until the batch with the first
ticket that refers to it is saved, so a person is stored together with a ticket that
needs it, or not at all.
"""

from __future__ import annotations

from collections import Counter
from typing import cast
from uuid import UUID

import structlog

from domain.agent import Agent
from domain.customer import Customer
from domain.values import EmploymentKind
from ticketing.application import HelpdeskApplication
from ticketing.importer import keys
from ticketing.importer.mapping import Mapping
from ticketing.importer.people import AgentPlan, CustomerPlan, PeoplePlan
from ticketing.importer.quirks import Quirk

log = structlog.get_logger(__name__)


class Directory:
    def __init__(self, app: HelpdeskApplication, mapping: Mapping, people: PeoplePlan) -> None:
        self.app = app
        self.mapping = mapping
        self.people = people
        self.quirks: Counter[Quirk] = Counter()
        self._agents: dict[str, Agent] = {}
        self._customers: dict[str, Customer] = {}

    def agent(self, resource: str) -> Agent:
        """Return the agent of `resource`, with every department that the log needs."""
        agent = self._agents.get(resource)
        if agent is None:
            agent = self._agents[resource] = self._prepare_agent(self.people.agents[resource])
        return agent

    def customer(self, value: str) -> Customer:
        customer = self._customers.get(value)
        if customer is None:
            customer = self._customers[value] = self._prepare_customer(self.people.customers[value])
        return customer

    def pending(self, agent_ids: set[UUID], customer_ids: set[UUID]) -> list[Agent | Customer]:
        """Return the named agents and customers that have events not yet stored."""
        people: list[Agent | Customer] = [
            agent for agent in self._agents.values() if agent.id in agent_ids and agent.pending_events
        ]
        people.extend(
            customer
            for customer in self._customers.values()
            if customer.id in customer_ids and customer.pending_events
        )
        return people

    def _prepare_agent(self, plan: AgentPlan) -> Agent:
        # load_or_none raises NotFound when the id belongs to another aggregate type.
        stored = cast("Agent | None", self.app.load_or_none(plan.agent_id, Agent))
        if stored is None:
            return self._hire(plan)
        self._add_missing_departments(stored, plan)
        return stored

    def _hire(self, plan: AgentPlan) -> Agent:
        first_at, first_department = plan.departments[0]
        name, email = self.mapping.agent_contact.render(plan.resource)
        agent = Agent.hire(
            plan.agent_id,
            name,
            email,
            EmploymentKind.REGULAR,
            None,
            [first_department],
            occurred_at=first_at,
            command_key=self._key("agent", plan.resource, "hire"),
            actor_id=keys.IMPORTER_ACTOR,
        )

        departments = [first_department]
        for occurred_at, department in plan.departments[1:]:
            departments.append(department)
            agent.change_departments(
                list(departments),
                occurred_at=occurred_at,
                command_key=self._key("agent", plan.resource, f"departments:{department}"),
                actor_id=keys.IMPORTER_ACTOR,
            )
        return agent

    def _add_missing_departments(self, agent: Agent, plan: AgentPlan) -> None:
        """Add the departments that an agent stored by an earlier import lacks.

        The domain rejects an event earlier than the agent's latest one. A department
        needed before that is added at the agent's latest time and counted.
        """
        for occurred_at, department in plan.departments:
            if department in agent.departments:
                continue
            latest = agent.last_occurred_at
            at = occurred_at
            if latest is not None and latest > occurred_at:
                at = latest
                self.quirks[Quirk.AGENT_DEPARTMENT_ADDED_LATE] += 1
                log.warning(
                    "stored agent lacks a department, adding it at the agent's latest time",
                    agent_id=str(agent.id),
                    department=department,
                    needed_at=occurred_at.isoformat(),
                    added_at=at.isoformat(),
                )
            agent.change_departments(
                [*agent.departments, department],
                occurred_at=at,
                command_key=self._key("agent", plan.resource, f"departments:{department}"),
                actor_id=keys.IMPORTER_ACTOR,
            )

    def _prepare_customer(self, plan: CustomerPlan) -> Customer:
        stored = cast("Customer | None", self.app.load_or_none(plan.customer_id, Customer))
        if stored is not None:
            return stored

        name, email = self.mapping.customer_contact.render(plan.value)
        return Customer.register(
            plan.customer_id,
            name,
            email,
            None,
            self.mapping.language,
            occurred_at=plan.registered_at,
            command_key=self._key("customer", plan.value, "register"),
            actor_id=keys.IMPORTER_ACTOR,
        )

    def _key(self, role: str, value: str, command: str) -> str:
        return keys.person_key(self.mapping.name, role, value, command)
