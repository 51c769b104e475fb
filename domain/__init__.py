"""Pure domain model of the helpdesk: the Ticket, Agent and Customer aggregates.

Imports only the standard library and `eventsourcing.domain`, so that it can be
tested and reused without any database, broker or logging set-up.
"""
