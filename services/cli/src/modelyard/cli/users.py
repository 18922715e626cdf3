"""Local identities: `modelyard up --users alice:publisher,bob:approver` gives each person a random bearer token,
kept (owner-only) in `<data-dir>/users.json` and the same on every later `up`, and configures the services to
know them and the stack's own callers, with anonymous access off; `modelyard --as bob ...` calls as bob."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from modelyard.auth import Role
from modelyard.cli.stack import DEFAULT_DATA_DIR, StackError

USERS_FILE = "users.json"
DEFAULT_USERS_FILE = DEFAULT_DATA_DIR / USERS_FILE
# The stack's services as callers of each other, once anonymous callers are refused: governance moves the
# protected production alias in the registry; serving and the monitor download artifacts and reference datasets.
SERVICE_PRINCIPALS: dict[str, list[str]] = {
    "governance": [Role.SERVICE.value],
    "serving": [Role.VIEWER.value],
    "monitor": [Role.VIEWER.value, Role.PUBLISHER.value],  # publisher: it registers retraining snapshots
}


class Identity(BaseModel):
    token: str
    roles: list[str]


class UsersFile(BaseModel):
    users: dict[str, Identity]
    services: dict[str, Identity]


def parse_users(spec: str) -> dict[str, list[str]]:
    """`alice:publisher,bob:approver+viewer` -> {"alice": ["publisher"], "bob": ["approver", "viewer"]}."""
    users: dict[str, list[str]] = {}
    known = ", ".join(role.value for role in Role)
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, roles = item.partition(":")
        if not sep or not name.isidentifier() or not roles:
            raise StackError(f"--users {item!r}: expected NAME:ROLE[+ROLE], e.g. alice:publisher")
        if name in SERVICE_PRINCIPALS:
            raise StackError(f"--users: {name!r} is the name of one of the stack's services; choose another")
        wanted = roles.split("+")
        unknown = [role for role in wanted if role not in {r.value for r in Role}]
        if unknown:
            raise StackError(f"--users {item!r}: unknown role {unknown[0]!r} (roles: {known})")
        users[name] = wanted
    if not users:
        raise StackError("--users names nobody: expected NAME:ROLE,..., e.g. alice:publisher,bob:approver")
    return users


def ensure_users(data_dir: Path, users: Mapping[str, list[str]]) -> UsersFile:
    """The users file with exactly `users` (with these roles), keeping the tokens of those it had already."""
    path = data_dir / USERS_FILE
    old = _load(path) if path.exists() else UsersFile(users={}, services={})

    def identity(known: Identity | None, roles: list[str]) -> Identity:
        return Identity(token=known.token if known else secrets.token_urlsafe(32), roles=roles)

    current = UsersFile(
        users={name: identity(old.users.get(name), roles) for name, roles in users.items()},
        services={name: identity(old.services.get(name), roles) for name, roles in SERVICE_PRINCIPALS.items()},
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # tokens: readable by this user only
    with os.fdopen(fd, "w") as file:
        file.write(current.model_dump_json(indent=2))
    temporary.replace(path)
    return current


def identity_settings(identities: UsersFile) -> tuple[str, ...]:
    """The services' settings for these identities, as `modelyard up --env SERVICE.KEY=VALUE` options: the
    registry and governance know every token and refuse anonymous callers; the services call with their own."""
    grants = {**identities.users, **identities.services}
    auth = json.dumps(
        {
            "allow_anonymous": False,
            "tokens": {i.token: {"principal": name, "roles": i.roles} for name, i in grants.items()},
        }
    )
    services = identities.services
    return (
        f"registry.auth={auth}",
        f"governance.auth={auth}",
        f"governance.registry_token={services['governance'].token}",
        f"serving.registry_token={services['serving'].token}",
        f"serving.governance_token={services['serving'].token}",
        f"monitor.registry_token={services['monitor'].token}",
    )


def token_of(users_file: Path, name: str) -> str:
    """The token of `name` in a users file written by `modelyard up --users`."""
    if not users_file.exists():
        raise StackError(f"--as {name}: no {users_file}; start the stack with `modelyard up --users {name}:ROLE`")
    identities = _load(users_file)
    if name not in identities.users:
        raise StackError(f"--as {name}: not a user of {users_file} (users: {', '.join(identities.users) or 'none'})")
    return identities.users[name].token


def _load(path: Path) -> UsersFile:
    try:
        return UsersFile.model_validate_json(path.read_text())
    except (OSError, ValidationError) as exc:
        raise StackError(f"{path} is not a users file of `modelyard up --users`: {type(exc).__name__}") from None
