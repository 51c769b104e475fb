"""Plan the agents and customers that a log names, before any ticket is driven.

The log identifies people only by a value in a column. Each non-system resource becomes an
agent, hired at the time of its first row in the department of that row's ticket.
Every further department it works in is added at the time of its first row there,
because the domain lets an agent take only tickets of its departments. The plan is made
from all rows first, so that an agent's events are in time order even though tickets
are imported case by case.

Each case's customer (the customer of its first row) becomes a customer, registered
at the opening time of that customer's first ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from ticketing.importer import keys
from ticketing.importer.mapping import Mapping, slug
from ticketing.importer.planner import CasePlan


@dataclass
class AgentPlan:
    resource: str
    agent_id: UUID
    # (time, department) in time order. The first entry is the hire.
    departments: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def hired_at(self) -> datetime:
        return self.departments[0][0]


@dataclass
class CustomerPlan:
    value: str
    customer_id: UUID
    registered_at: datetime


@dataclass
class PeoplePlan:
    agents: dict[str, AgentPlan]
    customers: dict[str, CustomerPlan]


def plan_people(cases: list[CasePlan], mapping: Mapping) -> PeoplePlan:
    return PeoplePlan(agents=_plan_agents(cases, mapping), customers=_plan_customers(cases, mapping))


def is_system_resource(resource: str, mapping: Mapping) -> bool:
    return resource in mapping.system_resources


def actor_for(resource: str, mapping: Mapping) -> str | None:
    """Return the actor id of a row's resource (a system user or an agent), or None without one."""
    if not resource:
        return None
    if is_system_resource(resource, mapping):
        return f"system:{slug(resource)}"
    return f"agent:{keys.agent_id(mapping.name, resource)}"


def _plan_agents(cases: list[CasePlan], mapping: Mapping) -> dict[str, AgentPlan]:
    appearances = [
        (plan.row.occurred_at, plan.row.line, plan.row.resource, plan.department)
        for case in cases
        for plan in case.rows
        if plan.row.resource and not is_system_resource(plan.row.resource, mapping)
    ]
    # Sorting by time, then line, gives each agent's departments in the order they
    # were first needed, whatever the order of the cases in the file.
    appearances.sort(key=lambda item: (item[0], item[1]))

    agents: dict[str, AgentPlan] = {}
    for occurred_at, _, resource, department in appearances:
        agent = agents.get(resource)
        if agent is None:
            agent = agents[resource] = AgentPlan(resource, keys.agent_id(mapping.name, resource))
        if department not in {name for _, name in agent.departments}:
            agent.departments.append((occurred_at, department))
    return agents


def _plan_customers(cases: list[CasePlan], mapping: Mapping) -> dict[str, CustomerPlan]:
    customers: dict[str, CustomerPlan] = {}
    for case in cases:
        known = customers.get(case.customer)
        if known is None:
            customers[case.customer] = CustomerPlan(
                case.customer, keys.customer_id(mapping.name, case.customer), case.opened_at
            )
        elif case.opened_at < known.registered_at:
            known.registered_at = case.opened_at
    return customers
