"""Reference profiling in a child process (`ReferenceProfiles(isolated=True)`), and what the monitor imports."""

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard.monitor.adapters.references import LocalReferenceSource
from modelyard.monitor.domain.errors import ReferenceDataError, ReferenceNotFound
from modelyard.monitor.profiles import ReferenceProfiles
from modelyard.monitor.testing import write_classifier_reference

pytestmark = pytest.mark.integration


def test_a_profile_built_in_a_child_process_is_the_one_built_in_process(tmp_path: Path) -> None:
    write_classifier_reference(tmp_path, "m", 1, accuracy=0.9, rows=3000)
    source = LocalReferenceSource(tmp_path)
    isolated = ReferenceProfiles(source, isolated=True).build("m", 1)
    in_process = ReferenceProfiles(source).build("m", 1)
    assert isolated.id == in_process.id  # a content hash: every array and the metadata
    assert isolated.calibration is not None and isolated.baseline == in_process.baseline


def test_the_child_process_errors_reach_the_monitor_as_they_are(tmp_path: Path) -> None:
    profiles = ReferenceProfiles(LocalReferenceSource(tmp_path), isolated=True)
    with pytest.raises(ReferenceNotFound):
        profiles.build("absent", 1)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "1.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReferenceDataError, match="cannot read reference data"):
        profiles.build("broken", 1)


def test_the_monitor_starts_without_pyarrow_pandas_or_scipy_stats() -> None:
    """~150 MB resident between them: the prediction path needs none (pyarrow is the profiling child's)."""
    heavy = ["pyarrow", "pandas", "scipy.stats", "scipy.linalg"]
    code = f"import sys, modelyard.monitor.__main__; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"
