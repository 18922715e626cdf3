"""Shared by the deployment tests: the repository root and deploy/config_reference.py, which is a script under
deploy/ rather than a package module, so it is loaded from its path."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).parents[3]


@pytest.fixture(scope="session")
def config_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "deploy/config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
