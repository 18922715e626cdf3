"""The house rules that keep the services in the same shape, checked on the source (issue 13): a domain imports
no transport, store or runtime library; adapters never import the use cases they serve."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SERVICES = Path(__file__).resolve().parents[2] / "services"
SERVICE_PACKAGES = sorted(p for p in SERVICES.glob("*/src/modelyard/*") if (p / "bootstrap.py").exists())
# What a domain must not know: generated protocol code, transports, databases, brokers, the model runtime.
FORBIDDEN_IN_DOMAIN = (
    "modelyard.contracts",
    "google.protobuf",
    "grpc",
    "sqlalchemy",
    "aiokafka",
    "fastapi",
    "onnxruntime",
)


def imported_modules(path: Path) -> Iterator[str]:
    """Every module a file imports, anywhere in it (TYPE_CHECKING blocks and functions included)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_four_services_are_found() -> None:
    assert [p.name for p in SERVICE_PACKAGES] == ["governance", "monitor", "registry", "serving"]


@pytest.mark.parametrize("package", SERVICE_PACKAGES, ids=lambda p: p.name)
def test_domain_imports_no_protocol_transport_or_store(package: Path) -> None:
    offences = [
        f"{path.relative_to(SERVICES)} imports {module}"
        for path in sorted((package / "domain").rglob("*.py"))
        for module in imported_modules(path)
        if any(_within(module, forbidden) for forbidden in FORBIDDEN_IN_DOMAIN)
    ]
    assert offences == []


@pytest.mark.parametrize("package", SERVICE_PACKAGES, ids=lambda p: p.name)
def test_adapters_do_not_import_handlers(package: Path) -> None:
    handlers = f"modelyard.{package.name}.handlers"
    offences = [
        f"{path.relative_to(SERVICES)} imports {module}"
        for path in sorted((package / "adapters").rglob("*.py"))
        for module in imported_modules(path)
        if _within(module, handlers)
    ]
    assert offences == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import grpc.aio\n")
    assert any(_within(m, "grpc") for m in imported_modules(source))


@pytest.mark.parametrize("package", SERVICE_PACKAGES, ids=lambda p: p.name)
def test_every_composition_root_has_the_same_shape(package: Path) -> None:
    """`build(settings, *, <fakes>) -> <Name>Parts` (a dataclass) and `service(parts) -> Service`, nothing else
    public that starts things: whoever knows one bootstrap knows all four."""
    tree = ast.parse((package / "bootstrap.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    build, service = functions["build"], functions["service"]
    parts = f"{package.name.capitalize()}Parts"
    assert [a.arg for a in build.args.args] == ["settings"]  # overrides (fakes) are keyword-only
    assert build.returns is not None and ast.unparse(build.returns) == parts
    assert any(ast.unparse(d).startswith("dataclass") for d in classes[parts].decorator_list)
    assert [a.arg for a in service.args.args] == ["parts"]
    assert service.returns is not None and ast.unparse(service.returns) == "Service"
    main = (package / "__main__.py").read_text()
    assert "service(build(settings))" in main


MAX_LINES = 450


def test_no_source_file_passes_the_line_limit() -> None:
    """Small rooms: a module past ~450 lines is usually two things. Generated protobuf code does not count."""
    too_long = {
        str(path.relative_to(SERVICES)): lines
        for path in SERVICES.rglob("*.py")
        if "_pb2" not in path.name and ".venv" not in path.parts
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


# No block of BLOCK or more identical lines in two members: shared code lives once, in core (issue 13).
BLOCK = 6
_BRACKETS_ONLY = re.compile(r"^[\s\[\](){},:;.]*$")
_TRIVIAL = frozenset({"else:", "try:", "finally:", "pass", "return", "continue", "break", '"""', "..."})
# The module attributes Alembic requires of every migration script: the same in every member by Alembic's design.
_ALEMBIC_HEADER = re.compile(r"^(revision|down_revision|branch_labels|depends_on) = ")


def significant_lines(source: str) -> Iterator[tuple[int, str]]:
    """(line number, the line with its whitespace normalised) for every line that says something: not blank, not a
    comment, not an import, not only brackets or a bare keyword, not a migration's Alembic header."""
    imports = {
        number
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for number in range(node.lineno, (node.end_lineno or node.lineno) + 1)
    }
    for number, line in enumerate(source.splitlines(), 1):
        normal = " ".join(line.split())
        trivial = (
            not normal
            or normal.startswith("#")
            or _BRACKETS_ONLY.match(normal)
            or normal in _TRIVIAL
            or _ALEMBIC_HEADER.match(normal)
        )
        if not trivial and number not in imports:
            yield number, normal


def repeated_blocks(files: dict[str, str]) -> dict[tuple[str, ...], dict[str, str]]:
    """Blocks of BLOCK consecutive significant lines found in more than one member: block -> {member: place}.
    `files` maps a path under services/ (its first part names the member) to its source."""
    places: dict[tuple[str, ...], dict[str, str]] = {}
    for name, source in files.items():
        lines = list(significant_lines(source))
        for start in range(len(lines) - BLOCK + 1):
            block = tuple(text for _, text in lines[start : start + BLOCK])
            places.setdefault(block, {}).setdefault(name.split("/")[0], f"{name}:{lines[start][0]}")
    return {block: members for block, members in places.items() if len(members) > 1}


def test_no_block_of_lines_is_repeated_across_services() -> None:
    files = {
        str(path.relative_to(SERVICES)): path.read_text()
        for path in sorted(SERVICES.rglob("*.py"))
        if "_pb2" not in path.name and ".venv" not in path.parts and "contracts" not in path.parts
    }
    assert [sorted(members.values()) for members in repeated_blocks(files).values()] == []


def test_the_repetition_check_sees_a_copied_block_and_ignores_imports_and_brackets() -> None:
    body = "".join(f"    total += {n} * weight\n" for n in range(BLOCK))
    copied = f"import os\nimport sys\n\ndef f(weight):\n    total = 0\n{body}    return total\n"
    assert repeated_blocks({"serving/a.py": copied, "monitor/b.py": copied.replace("def f", "def g")}) != {}
    assert repeated_blocks({"serving/a.py": copied, "serving/b.py": copied}) == {}  # within one member: fine
    boilerplate = "from x import (\n    a,\n    b,\n    c,\n    d,\n    e,\n    f,\n)\n" + "(\n)\n" * BLOCK
    assert repeated_blocks({"serving/a.py": boilerplate, "monitor/b.py": boilerplate}) == {}
