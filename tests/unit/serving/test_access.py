"""Serving's access table: inference needs a token in production by default, never the probes."""

from __future__ import annotations

import pytest

from modelyard.access import OPEN
from modelyard.serving.config import ServingSettings
from modelyard.serving.entrypoints.access import access_table

pytestmark = pytest.mark.unit


def test_inference_token_defaults_follow_the_profile() -> None:
    assert not ServingSettings().inference_token_required
    assert ServingSettings(auth={"require_inference_token": True}).inference_token_required
    production = ServingSettings.model_construct(profile="production", auth=ServingSettings().auth)
    assert production.inference_token_required


def test_inference_is_open_only_when_no_token_is_required() -> None:
    assert access_table(False)["ModelInfer"] is OPEN
    assert access_table(True)["ModelInfer"] is not OPEN
    for required in (False, True):
        table = access_table(required)
        assert table["ServerLive"] is OPEN and table["ServerReady"] is OPEN and table["ModelReady"] is OPEN
        assert table["RepositoryModelUnload"].roles is not None
