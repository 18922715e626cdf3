"""Renders the topic catalogue into docs/events.md, between the generated-section markers.

`python -m modelyard.events.catalogue docs/events.md` rewrites the section; a test fails when it is stale.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from modelyard.events import topics
from modelyard.generated_docs import END, replace_section, rewrite_main

BEGIN = "<!-- BEGIN GENERATED: topic catalogue (make docs) -->"


def _field_type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            return f"map<{_field_type(key)}, {_field_type(value)}>"
        name = field.message_type.full_name
    elif field.enum_type is not None:
        name = field.enum_type.full_name
    else:
        name = _SCALARS[field.type]
    repeated = field.is_repeated and not (field.message_type is not None and field.message_type.GetOptions().map_entry)
    return f"repeated {name}" if repeated else name


_SCALARS = {
    value: name.removeprefix("TYPE_").lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and isinstance(value, int)
}


def _fields(payload: type[Message]) -> str:
    return ", ".join(f"`{f.name}` ({_field_type(f)})" for f in payload.DESCRIPTOR.fields)


def render() -> str:
    lines = [BEGIN, ""]
    lines += [
        "| topic | partitions | key | producer | `ce_source` allowed | signed | event types |",
        "|---|---|---|---|---|---|---|",
    ]
    for topic in topics.ALL:
        types = "<br>".join(f"`{t}`" for t in topic.event_types)
        sources = ", ".join(f"`{s}`" for s in topic.sources) or "any"
        signed = "**yes**, by the source's key" if topic.signed else "no"
        lines.append(
            f"| `{topic.name}` | {topic.partitions} | {topic.key} | {topic.producer} | {sources} | {signed} | {types} |"
        )
    lines.append("")
    lines.append(
        f"Every topic has a dead-letter topic `<topic>{topics.DLQ_SUFFIX}` ({topics.DLQ_PARTITIONS} partition)."
    )
    for topic in topics.ALL:
        lines += ["", f"### `{topic.name}`", "", topic.summary, ""]
        if topic.configs:
            configs = ", ".join(f"`{key}={value}`" for key, value in topic.configs)
            lines += [f"Created with {configs} (see docs/operations.md: the embedded broker ignores them).", ""]
        for payload in topic.payloads:
            lines.append(f"- **`{payload.DESCRIPTOR.full_name}`**: {_fields(payload)}")
    lines += ["", END]
    return "\n".join(lines)


def update(document: str) -> str:
    """The document with its generated section replaced by the current catalogue."""
    return replace_section(document, BEGIN, render())


if __name__ == "__main__":
    rewrite_main(update)
