"""The monitor's access table: who may call each method (gRPC) and its REST route of the same name.

Feedback can open a performance incident (which a policy may turn into a rollback) and a rebaseline drops the
open windows, so neither is left to readers.
"""

from __future__ import annotations

from modelyard.access import Rule, roles
from modelyard.auth import Role
from modelyard.monitor.entrypoints.dashboard import DASHBOARD

READ = roles(Role.VIEWER, Role.APPROVER)

ACCESS: dict[str, Rule] = {
    "SendFeedback": roles(Role.FEEDBACK),
    "SendFeedbackStream": roles(Role.FEEDBACK),  # and POST /api/v1/feedback/batch
    "Rebaseline": roles(Role.APPROVER),
    "GetStatus": READ,
    "ListWindows": READ,
    "ListIncidents": READ,
    "ListPerformance": READ,
    "GetPrediction": roles(READ.roles or (), Role.SERVICE),  # and GET /api/v1/predictions/{id}; governance traces
    "ListSnapshots": READ,  # REST only: GET /api/v1/models/{name}/snapshots
    DASHBOARD: READ,
}
