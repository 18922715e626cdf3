"""Generate the Python contracts (`modelyard.contracts`) from protos/.

protoc names Python modules after proto file paths (`modelyard/events/v1/...`, `inference/...`); we nest them
under `modelyard.contracts` so that generated code never collides with the services' own packages, and rewrite
the generated imports to match. Usage: `python protos/generate.py [OUT_DIR]` (default: the committed location).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parent
DEFAULT_OUT = PROTOS.parent / "services/core/src/modelyard/contracts"
HEADER = '"""Generated from protos/ by `make generate`; do not edit."""\n'
_IMPORT = re.compile(r"^(from|import) (modelyard|inference)\b(\.[\w.]+)?", re.MULTILINE)


def _target(path: Path) -> Path:
    """`modelyard/events/v1/x_pb2.py` -> `events/v1/x_pb2.py`; `inference/...` stays."""
    parts = path.parts
    return Path(*parts[1:]) if parts[0] == "modelyard" else path


def _rewrite_imports(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        keyword, root, rest = match.group(1), match.group(2), match.group(3) or ""
        module = rest.lstrip(".") if root == "modelyard" else f"inference{rest}"
        return f"{keyword} modelyard.contracts.{module}".rstrip(".")

    return _IMPORT.sub(repl, text)


def generate(out_dir: Path) -> None:
    protos = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as raw:
        args = [
            "protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={raw}",
            f"--pyi_out={raw}",
            f"--grpc_python_out={raw}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "__init__.py").write_text(HEADER)
        for src in sorted(Path(raw).rglob("*.py*")):
            dest = out_dir / _target(src.relative_to(raw))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(_rewrite_imports(src.read_text()))
            for package in dest.relative_to(out_dir).parents:
                init = out_dir / package / "__init__.py"
                if not init.exists():
                    init.write_text(HEADER)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
