"""The monitor's statuses: the shared table of error kinds, except that its one FAILED_PRECONDITION (a reference
dataset that cannot be profiled) is 422 over HTTP: the data sent is unprocessable, not in conflict with a state."""

from __future__ import annotations

from modelyard.errors import ErrorKind
from modelyard.runtime.errors import ErrorEdge

ERRORS = ErrorEdge(http_overrides={ErrorKind.FAILED_PRECONDITION: 422})
