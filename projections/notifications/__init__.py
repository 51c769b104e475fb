"""Notifications: rules from a YAML file turn events and deadlines into outbox messages.

The projection (group "notifications") writes each fired notification once to the
outbox table in the consumer's transaction. The dispatcher sends the outbox by e-mail
and Slack and records every attempt.
"""

from projections.notifications.projection import GROUP, NotificationsProjection

PROJECTION = NotificationsProjection()

__all__ = ["GROUP", "PROJECTION", "NotificationsProjection"]
