"""The governance's statuses: the shared table of error kinds (`modelyard.runtime.errors`), unchanged."""

from __future__ import annotations

from modelyard.runtime.errors import ErrorEdge

ERRORS = ErrorEdge()
