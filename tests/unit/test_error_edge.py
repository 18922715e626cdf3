"""The one error edge: every error a caller may be told about carries a kind, and each service's table turns it into
the gRPC status and HTTP code its clients have always seen."""

from __future__ import annotations

import grpc
import pytest

from modelyard.auth import PermissionDenied, Unauthenticated
from modelyard.errors import ErrorKind, KindedError
from modelyard.governance.domain import errors as governance
from modelyard.governance.entrypoints.errors import ERRORS as GOVERNANCE
from modelyard.inputs import BadInput
from modelyard.monitor.domain import errors as monitor
from modelyard.monitor.entrypoints.errors import ERRORS as MONITOR
from modelyard.oidc import IdentityProviderUnavailable
from modelyard.registry.domain import errors as registry
from modelyard.registry.entrypoints.errors import ERRORS as REGISTRY
from modelyard.runtime.errors import ErrorEdge
from modelyard.serving.domain import errors as serving
from modelyard.serving.entrypoints.errors import ERRORS as SERVING

pytestmark = pytest.mark.unit

S = grpc.StatusCode


@pytest.mark.parametrize(
    ("edge", "error", "expected"),
    [
        (GOVERNANCE, governance.InvalidArgument("x"), (S.INVALID_ARGUMENT, 400)),
        (GOVERNANCE, governance.NotFound("x"), (S.NOT_FOUND, 404)),
        (GOVERNANCE, governance.AlreadyExists("x"), (S.ALREADY_EXISTS, 409)),
        (GOVERNANCE, governance.ArtifactChanged("x"), (S.FAILED_PRECONDITION, 409)),
        (GOVERNANCE, governance.AuditTampered("x", 3), (S.FAILED_PRECONDITION, 409)),
        (GOVERNANCE, governance.SeparationOfDuties("x"), (S.PERMISSION_DENIED, 403)),
        (GOVERNANCE, governance.CatalogUnavailable("x"), (S.UNAVAILABLE, 503)),
        (GOVERNANCE, governance.SignerNotReady("x"), (S.UNAVAILABLE, 503)),
        (MONITOR, monitor.InvalidArgument("x"), (S.INVALID_ARGUMENT, 400)),
        (MONITOR, monitor.ReferenceNotFound("x"), (S.NOT_FOUND, 404)),
        (MONITOR, monitor.ReferenceDataError("x"), (S.FAILED_PRECONDITION, 422)),
        (MONITOR, monitor.ReferenceUnavailable("x"), (S.UNAVAILABLE, 503)),
        (REGISTRY, registry.FailedPrecondition("x"), (S.FAILED_PRECONDITION, 409)),
        (SERVING, serving.InvalidArgument("x"), (S.INVALID_ARGUMENT, 400)),
        (SERVING, serving.NotFound("x"), (S.NOT_FOUND, 404)),
        (SERVING, serving.Unavailable("x"), (S.UNAVAILABLE, 503)),
        (SERVING, serving.ResourceExhausted("x"), (S.RESOURCE_EXHAUSTED, 413)),
        (SERVING, serving.ArtifactError("x"), (S.UNAVAILABLE, 503)),
        (SERVING, serving.PlanSourceError("x"), (S.UNAVAILABLE, 503)),
        (SERVING, serving.ServingError("x"), (S.INTERNAL, 500)),
    ],
)
def test_each_service_keeps_its_statuses(edge: ErrorEdge, error: Exception, expected: tuple[S, int]) -> None:
    assert edge.of(error) == expected


@pytest.mark.parametrize("edge", [GOVERNANCE, MONITOR, REGISTRY, SERVING])
@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (BadInput("x"), (S.INVALID_ARGUMENT, 400)),
        (Unauthenticated("x"), (S.UNAUTHENTICATED, 401)),
        (PermissionDenied("x"), (S.PERMISSION_DENIED, 403)),
        (IdentityProviderUnavailable("x"), (S.UNAVAILABLE, 503)),
        (RuntimeError("/srv/secret/path"), (S.INTERNAL, 500)),
    ],
)
def test_shared_errors_answer_the_same_everywhere(edge: ErrorEdge, error: Exception, expected: tuple[S, int]) -> None:
    assert edge.of(error) == expected
    assert edge.known == (KindedError,)


def test_kinds_are_grpc_codes_and_every_kind_has_an_http_code() -> None:
    for kind in ErrorKind:
        assert S[kind.name].value[0] == kind.value
        assert isinstance(ErrorEdge().of(_raised(kind))[1], int)


def test_rest_body_names_the_status_and_hides_server_paths() -> None:
    body = REGISTRY.body(registry.NotFound("no artifact at /var/lib/modelyard/artifacts/ab"))
    assert body == {"code": "NOT_FOUND", "message": "no artifact at <path>"}


def _raised(kind: ErrorKind) -> KindedError:
    error = KindedError("x")
    error.kind = kind  # type: ignore[misc]
    return error
