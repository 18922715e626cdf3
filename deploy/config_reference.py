"""The configuration reference: every environment variable of the four services, read from their settings classes.

    uv run python deploy/config_reference.py docs/operations.md     (part of `make docs`)

rewrites the generated section of docs/operations.md. The deployment tests use `environment_variables` to check
docker-compose.yml and deploy/ against the same classes, and fail when that section is stale.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from modelyard.generated_docs import END, replace_section, rewrite_main
from modelyard.governance.config import GovernanceSettings
from modelyard.monitor.config import MonitorSettings
from modelyard.registry.config import RegistrySettings
from modelyard.serving.config import ServingSettings
from modelyard.settings import ServiceSettings

SERVICES: dict[str, type[ServiceSettings]] = {
    "registry": RegistrySettings,
    "serving": ServingSettings,
    "monitor": MonitorSettings,
    "governance": GovernanceSettings,
}

BEGIN = "<!-- BEGIN GENERATED: configuration -->"


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    default: str
    description: str
    required: bool


def environment_variables(settings: type[ServiceSettings]) -> dict[str, Variable]:
    """Every environment variable `settings` reads, by name. A nested model (e.g. `auth`) is one JSON variable and,
    when the class has an `env_nested_delimiter`, also one variable per nested field (`..._AUTH__TOKENS`)."""
    prefix = settings.model_config.get("env_prefix", "")
    delimiter = settings.model_config.get("env_nested_delimiter")
    variables: dict[str, Variable] = {}
    for field_name, field in settings.model_fields.items():
        name = f"{prefix}{field_name}".upper()
        # A service that only changes a base field's default (its ports) keeps the base field's description.
        inherited = ServiceSettings.model_fields.get(field_name)
        variables[name] = _variable(name, field, inherited.description if inherited else None)
        nested = field.annotation
        if delimiter and isinstance(nested, type) and issubclass(nested, BaseModel):
            for sub_name, sub_field in nested.model_fields.items():
                sub = f"{name}{delimiter}{sub_name}".upper()
                variables[sub] = _variable(sub, sub_field)
    return variables


def _variable(name: str, field: FieldInfo, fallback_description: str | None = None) -> Variable:
    required = field.is_required()
    return Variable(
        name=name,
        type=_type_name(field.annotation),
        default="required" if required else _default(field),
        description=field.description or fallback_description or "",
        required=required,
    )


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    # A validated type shows as what is written: Annotated[str, AfterValidator(...)] -> str (its repr has addresses).
    text = re.sub(r"(?:typing\.)?Annotated\[([\w.]+), .*?\)\]", r"\1", text)
    return re.sub(r"\b(?:[a-z_]\w*\.)+(\w+)", r"\1", text.replace("typing.", ""))  # modelyard.auth.X -> X


def _default(field: FieldInfo) -> str:
    if field.default_factory is None:
        return _json(field.default)
    # Factories compute per-process values (the host name) or nested models documented in their own rows; only
    # an empty container is worth printing.
    value = field.default_factory()  # type: ignore[call-arg]
    return _json(value) if isinstance(value, list | dict | set | frozenset) and not value else "computed"


def _json(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"

    def plain(v: Any) -> Any:
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, set | frozenset):
            return sorted(v)
        return str(v)

    return json.dumps(value, default=plain)


def render() -> str:
    lines = [BEGIN, ""]
    for service, settings in SERVICES.items():
        lines += [
            f"### {service}",
            "",
            f"`{settings.__module__}.{settings.__name__}`",
            "",
            "| variable | type | default | description |",
            "|---|---|---|---|",
        ]
        for v in environment_variables(settings).values():
            cells = [f"`{v.name}`", f"`{v.type}`", f"`{v.default}`", v.description]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update(document: str) -> str:
    """The document with its generated section replaced by the current reference."""
    return replace_section(document, BEGIN, render())


if __name__ == "__main__":
    rewrite_main(update)
