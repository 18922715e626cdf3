import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelyard.auth import AuthSettings, Role, TokenGrant
from modelyard.governance import bootstrap as governance_bootstrap
from modelyard.governance.config import GovernanceSettings
from modelyard.governance.testing import POLICY, InMemoryCatalog, governance_settings
from modelyard.runtime import StartupError
from modelyard.tls import TlsSettings

pytestmark = pytest.mark.unit


def test_a_bad_policy_stops_the_start_with_the_line(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY.replace("count: 2", "count: two"))
    with pytest.raises(StartupError, match=r"policy.yaml:10: promotions.0.approvals.count: Input should be"):
        governance_bootstrap.service(
            governance_bootstrap.build(governance_settings(tmp_path), catalog=InMemoryCatalog())
        )


STRONG_AUTH = AuthSettings(
    allow_anonymous=False, tokens={secrets.token_urlsafe(32): TokenGrant(principal="ci", roles=frozenset({Role.ADMIN}))}
)


def test_production_needs_a_signing_key_and_a_policy() -> None:
    with pytest.raises(ValidationError) as error:
        GovernanceSettings(
            profile="production", host="0.0.0.0", auth=STRONG_AUTH, tls=TlsSettings(terminated_by_proxy=True)
        )
    assert "no audit signing key" in str(error.value) and "no policy file" in str(error.value)
