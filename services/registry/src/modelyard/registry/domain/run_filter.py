"""MLflow's run search grammar: `metrics.rmse < 0.5 and params.model = 'tree' and tags."team" LIKE 'a%'`, and its
ORDER BY terms. Parsed here into clauses that a store turns into its query; anything else is InvalidArgument."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from modelyard.registry.domain.errors import InvalidArgument


class Field(StrEnum):
    METRIC = "metric"
    PARAM = "param"
    TAG = "tag"
    ATTRIBUTE = "attribute"
    DATASET = "dataset"


_ENTITIES = {
    **dict.fromkeys(("metric", "metrics", "m"), Field.METRIC),
    **dict.fromkeys(("param", "params", "p", "parameter", "parameters"), Field.PARAM),
    **dict.fromkeys(("tag", "tags", "t"), Field.TAG),
    **dict.fromkeys(("attribute", "attributes", "attr", "a", "run"), Field.ATTRIBUTE),
    **dict.fromkeys(("dataset", "datasets"), Field.DATASET),
}
DATASET_KEYS = frozenset({"name", "digest", "context"})
NUMERIC_OPS = ("=", "!=", ">", ">=", "<", "<=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE")
SET_OPS = ("IN", "NOT IN")
_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<quoted>`[^`]*`)|(?P<op>>=|<=|!=|<>|=|>|<)"""
    r"""|(?P<punct>[(),])|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z_][\w.]*))"""
)


@dataclass(frozen=True)
class Searchable:
    """What a search's filter may name: the entity's attributes (compared as strings or numbers), whether it
    has dataset inputs, and whether an attribute may go without its `attributes.` prefix (MLflow's logged model
    search writes `name = 'model'`)."""

    strings: frozenset[str]
    numbers: frozenset[str]
    datasets: bool
    bare_attributes: bool = False

    @property
    def attributes(self) -> frozenset[str]:
        return self.strings | self.numbers


RUNS = Searchable(
    frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"}),
    frozenset({"start_time", "end_time"}),
    datasets=True,
)
LOGGED_MODELS = Searchable(
    frozenset({"model_id", "name", "status", "source_run_id", "model_type"}),
    frozenset({"creation_timestamp", "last_updated_timestamp"}),
    datasets=False,
    bare_attributes=True,
)


@dataclass(frozen=True)
class Clause:
    field: Field
    key: str
    op: str
    value: str | float | tuple[str, ...]


@dataclass(frozen=True)
class OrderKey:
    field: Field
    key: str
    descending: bool


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, at = [], 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise InvalidArgument(f"invalid filter {text[:100]!r}: unexpected {text[at : at + 10]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match[kind]))
        at = match.end()
    return tokens


def _unquote(token: str) -> str:
    return token[1:-1].replace("\\'", "'").replace('\\"', '"')


class _Parser:
    def __init__(self, text: str, searchable: Searchable = RUNS) -> None:
        self.searchable = searchable
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0

    def fail(self, why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid filter {self.text[:100]!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise self.fail("it ends too early")
        self.at += 1
        return token

    def word(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() in words:
            self.at += 1
            return True
        return False

    def identifier(self) -> tuple[Field, str]:
        kind, text = self.take()
        if kind == "word" and "." not in text and self.searchable.bare_attributes:
            return Field.ATTRIBUTE, text
        if kind != "word" or "." not in text:
            raise self.fail(f"expected <metrics|params|tags|attributes|datasets>.<key>, got {text[:40]!r}")
        entity, _, key = text.partition(".")
        field = _ENTITIES.get(entity.lower())
        if field is None:
            raise self.fail(f"unknown entity {entity[:40]!r}: use metrics, params, tags, attributes or datasets")
        if not key:
            kind, quoted = self.take()
            if kind not in ("quoted", "str"):
                raise self.fail("expected a key after the entity's '.'")
            key = _unquote(quoted)
        return field, key

    def order_key(self) -> OrderKey:
        field, key = self.identifier()
        descending = self.word("DESC")
        if not descending:
            self.word("ASC")
        if self.peek() is not None:
            raise self.fail("an order_by term is <entity>.<key> [ASC|DESC]")
        return OrderKey(field, key, descending)

    def clause(self) -> Clause:
        field, key = self.identifier()
        op = self.operator()
        if op in SET_OPS:
            return _checked(self, Clause(field, key, op, self.string_set()))
        kind, text = self.take()
        if kind == "str":
            return _checked(self, Clause(field, key, op, _unquote(text)))
        if kind == "num":
            return _checked(self, Clause(field, key, op, float(text)))
        raise self.fail(f"expected a quoted string or a number after {op}, got {text[:40]!r}")

    def operator(self) -> str:
        kind, text = self.take()
        if kind == "op":
            return "!=" if text == "<>" else text
        upper = text.upper() if kind == "word" else ""
        if upper == "NOT" and self.word("IN", "LIKE", "ILIKE"):
            return "NOT " + self.tokens[self.at - 1][1].upper()
        if upper in ("LIKE", "ILIKE", "IN"):
            return upper
        raise self.fail(f"expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN), got {text[:40]!r}")

    def string_set(self) -> tuple[str, ...]:
        if self.take() != ("punct", "("):
            raise self.fail("IN takes a parenthesised list of quoted strings")
        values = []
        while True:
            kind, text = self.take()
            if kind != "str":
                raise self.fail("IN takes a parenthesised list of quoted strings")
            values.append(_unquote(text))
            if self.take()[1] == ")":
                return tuple(values)


def _checked(parser: _Parser, clause: Clause) -> Clause:
    searchable = parser.searchable
    numeric = clause.field is Field.METRIC or (clause.field is Field.ATTRIBUTE and clause.key in searchable.numbers)
    if clause.field is Field.ATTRIBUTE and clause.key not in searchable.attributes:
        known = ", ".join(sorted(searchable.attributes))
        raise parser.fail(f"unknown attribute {clause.key[:40]!r}; searchable: {known}")
    if clause.field is Field.DATASET and not searchable.datasets:
        raise parser.fail("datasets cannot be searched here")
    if clause.field is Field.DATASET and clause.key not in DATASET_KEYS:
        raise parser.fail(f"datasets can be searched by {', '.join(sorted(DATASET_KEYS))}")
    if numeric:
        if clause.op not in NUMERIC_OPS or not isinstance(clause.value, float):
            raise parser.fail(f"{clause.field.value} {clause.key!r} compares with {', '.join(NUMERIC_OPS)} to a number")
    elif isinstance(clause.value, float):
        raise parser.fail(f"{clause.field.value} {clause.key!r} compares to a quoted string")
    elif clause.op in SET_OPS and clause.field not in (Field.ATTRIBUTE, Field.DATASET):
        raise parser.fail("IN works on attributes and datasets only")
    elif clause.op not in (*STRING_OPS, *SET_OPS):
        raise parser.fail(f"{clause.field.value} {clause.key!r} compares with {', '.join(STRING_OPS)}")
    return clause


def parse_filter(text: str, searchable: Searchable = RUNS) -> tuple[Clause, ...]:
    """Clauses joined by AND (OR and parentheses are not part of MLflow's grammar either)."""
    if not text.strip():
        return ()
    parser = _Parser(text, searchable)
    clauses = [parser.clause()]
    while parser.peek() is not None:
        if not parser.word("AND"):
            raise parser.fail(f"clauses are joined by AND, got {parser.take()[1][:40]!r}")
        clauses.append(parser.clause())
    return tuple(clauses)


def parse_order_by(terms: list[str], searchable: Searchable = RUNS) -> tuple[OrderKey, ...]:
    keys = tuple(_Parser(term, searchable).order_key() for term in terms)
    for key in keys:
        if key.field is Field.DATASET or (key.field is Field.ATTRIBUTE and key.key not in searchable.attributes):
            raise InvalidArgument(f"cannot order by {key.field.value} {key.key[:40]!r}")
    return keys
