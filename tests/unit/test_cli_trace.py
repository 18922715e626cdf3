"""`modelyard trace verify` on files that are not what they should be: a one-line reason and exit status 1, never
a traceback; and `trace ID` is `trace show ID`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app

pytestmark = pytest.mark.unit
EXPORT = '{"type":"header","public_key":"00","key_id":"k"}\n'


@pytest.mark.parametrize(
    ("trace", "export", "problem"),
    [
        ("not json", EXPORT, "trace.json: not JSON"),
        ("[1, 2]", EXPORT, "trace.json: not a trace document"),
        ('{"type": "x"}', "nope\n", "audit.jsonl line 1: not JSON"),
        ('{"type": "x"}', '{"seq": 1}\n', "audit.jsonl line 1: not an audit export record"),
        ('{"type": "x"}', EXPORT, "does not verify: not a signed prediction trace"),
    ],
)
def test_verify_explains_a_bad_file(tmp_path: Path, trace: str, export: str, problem: str) -> None:
    (tmp_path / "trace.json").write_text(trace)
    (tmp_path / "audit.jsonl").write_text(export)
    args = ["trace", "verify", str(tmp_path / "trace.json"), "--audit-export", str(tmp_path / "audit.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and problem in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_missing_file_is_named_without_its_path(tmp_path: Path) -> None:
    (tmp_path / "trace.json").write_text("{}")
    args = ["trace", "verify", str(tmp_path / "trace.json"), "--audit-export", str(tmp_path / "gone.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "cannot read gone.jsonl: FileNotFoundError" in result.output


def test_a_request_id_alone_is_traced() -> None:
    result = CliRunner().invoke(app, ["trace", "some-id", "--governance", "127.0.0.1:1"])
    assert result.exit_code == 1 and "UNAVAILABLE" in result.output  # `show` ran: it asked governance
