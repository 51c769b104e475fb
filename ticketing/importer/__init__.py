"""Import a helpdesk log (CSV) into the event store as Ticket, Agent and Customer events.

`mapping` reads the YAML that names the column of each value, `reader` checks the rows,
`planner` groups them by case, `executor` drives each ticket in memory and `runner`
saves whole tickets in batches. docs/import.md describes the format and the choices
made for the Italian helpdesk log.
"""
