"""The policy shown in docs/governance.md is a valid policy, so the documentation cannot drift from the schema."""

import re
from pathlib import Path

import pytest

from modelyard.governance.domain.policy import parse_policy

pytestmark = pytest.mark.unit
DOC = Path(__file__).parents[3] / "docs/governance.md"


def test_the_documented_policy_parses() -> None:
    blocks = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks, "docs/governance.md shows no policy"
    for block in blocks:
        policy = parse_policy(block, "docs/governance.md")
        assert policy.promotions
