"""docs/operations.md's configuration reference is generated from the settings classes and kept in step."""

from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

OPERATIONS = Path(__file__).parents[3] / "docs/operations.md"


def test_operations_configuration_reference_is_current(config_reference: ModuleType) -> None:
    document = OPERATIONS.read_text()
    assert config_reference.update(document) == document, "docs/operations.md is stale: run `make docs`"


def test_reference_covers_every_service_and_every_setting(config_reference: ModuleType) -> None:
    for settings in config_reference.SERVICES.values():
        variables = config_reference.environment_variables(settings)
        prefix = settings.model_config["env_prefix"]
        assert {f"{prefix}{name}".upper() for name in settings.model_fields} <= variables.keys()
