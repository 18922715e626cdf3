"""Local identities of `modelyard up --users`: parsing, tokens kept across runs (owner-only file), the services'
settings they become, and `modelyard --as` finding a token or saying why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app
from modelyard.cli.stack import StackError
from modelyard.cli.users import USERS_FILE, ensure_users, identity_settings, parse_users, token_of

pytestmark = pytest.mark.unit


def test_users_are_parsed_with_one_or_more_roles() -> None:
    assert parse_users("alice:publisher, bob:approver+viewer") == {
        "alice": ["publisher"],
        "bob": ["approver", "viewer"],
    }


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("alice", "expected NAME:ROLE"),
        ("alice:boss", "unknown role 'boss'"),
        ("governance:admin", "one of the stack's services"),
        (",", "names nobody"),
    ],
)
def test_bad_users_are_refused_clearly(spec: str, problem: str) -> None:
    with pytest.raises(StackError, match=problem):
        parse_users(spec)


def test_tokens_stay_across_runs_in_an_owner_only_file(tmp_path: Path) -> None:
    first = ensure_users(tmp_path, parse_users("alice:publisher,bob:approver"))
    assert (tmp_path / USERS_FILE).stat().st_mode & 0o777 == 0o600
    again = ensure_users(tmp_path, parse_users("alice:publisher+viewer,carol:approver"))
    assert again.users["alice"].token == first.users["alice"].token
    assert again.users["alice"].roles == ["publisher", "viewer"]
    assert "bob" not in again.users  # left out: no longer let in
    assert again.services == first.services
    assert token_of(tmp_path / USERS_FILE, "carol") == again.users["carol"].token


def test_the_services_know_every_token_and_refuse_anonymous_callers(tmp_path: Path) -> None:
    identities = ensure_users(tmp_path, parse_users("alice:publisher"))
    settings = dict(option.split("=", 1) for option in identity_settings(identities))
    auth = json.loads(settings["registry.auth"])
    assert auth["allow_anonymous"] is False
    assert auth["tokens"][identities.users["alice"].token] == {"principal": "alice", "roles": ["publisher"]}
    assert auth["tokens"][identities.services["governance"].token]["roles"] == ["service"]
    assert settings["governance.registry_token"] == identities.services["governance"].token


def test_as_names_a_known_user_or_fails_with_the_reason(tmp_path: Path) -> None:
    users_file = tmp_path / USERS_FILE
    missing = CliRunner().invoke(app, ["--users-file", str(users_file), "--as", "bob", "pending"])
    assert missing.exit_code == 1 and "modelyard up --users bob:ROLE" in missing.output
    ensure_users(tmp_path, parse_users("alice:publisher"))
    unknown = CliRunner().invoke(app, ["--users-file", str(users_file), "--as", "bob", "pending"])
    assert unknown.exit_code == 1 and "not a user" in unknown.output and "alice" in unknown.output
