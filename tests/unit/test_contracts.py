import filecmp
import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).parents[2]
COMMITTED = ROOT / "services/core/src/modelyard/contracts"


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_committed_generated_code_matches_protos(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos/generate.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    fresh = tmp_path / "contracts"
    generator.generate(fresh)
    assert _files(fresh) == _files(COMMITTED), "generated files differ: run `make generate`"
    stale = [name for name in sorted(_files(fresh)) if not filecmp.cmp(fresh / name, COMMITTED / name, shallow=False)]
    assert not stale, f"stale generated code, run `make generate`: {stale}"
