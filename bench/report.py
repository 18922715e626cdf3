"""What every benchmark's results header states, the same way: the commit, the load, the peers' versions; and the uv
the Makefile provides, which installs the peers. Imported by the bench scripts (their directory's parent on the
path)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
# `uv run` names itself in UV; else uv on PATH; else the one pip installed for python3 (the Makefile's fallback).
UV = [os.environ["UV"]] if os.environ.get("UV") else (["uv"] if shutil.which("uv") else ["python3", "-m", "uv"])


def git_commit() -> str:
    """The checked-out commit, and whether tracked files differ from it (untracked ones are no part of the code)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE, check=True).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return git("rev-parse", "--short=12", "HEAD") + dirty


def load_average() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def package_versions(python: str | Path, *packages: str) -> str:
    """`package version, ...` as installed for `python` (another virtualenv's interpreter included)."""
    code = "import importlib.metadata as m, sys; print(', '.join(f'{p} {m.version(p)}' for p in sys.argv[1:]))"
    out = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, check=True)
    return out.stdout.strip()
