"""Every projection group by name, for `ticketing consume`, `status`, `replay` and `report`.

Importing this module imports every projection module, which also registers their
named reports in `projections.report_queries.REPORTS`.
"""

from __future__ import annotations

from consumers.projection import Projection
from projections.notifications import PROJECTION as NOTIFICATIONS_PROJECTION
from projections.reports import PROJECTION as REPORTS_PROJECTION
from projections.retention import PROJECTION as RETENTION_PROJECTION

PROJECTIONS: dict[str, Projection] = {
    REPORTS_PROJECTION.group: REPORTS_PROJECTION,
    RETENTION_PROJECTION.group: RETENTION_PROJECTION,
    NOTIFICATIONS_PROJECTION.group: NOTIFICATIONS_PROJECTION,
}
