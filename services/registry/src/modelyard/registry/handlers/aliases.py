"""The registry's use cases, aliases: moves (protected ones need an approver), resolution now or at a time, history."""

from __future__ import annotations

from datetime import datetime

from modelyard.auth import Principal
from modelyard.registry import convert
from modelyard.registry.domain.errors import (
    FailedPrecondition,
    NotFound,
)
from modelyard.registry.domain.model import (
    AliasMove,
    ModelVersion,
    VersionStatus,
    validate_alias,
    validate_model_name,
    validate_version,
)
from modelyard.registry.domain.pagination import Page, decode_token, encode_token, page_size
from modelyard.registry.domain.ports import (
    RegistryTransaction,
)
from modelyard.registry.handlers.base import (
    LATEST,
    MOVE_ALIAS,
    MOVE_PROTECTED_ALIAS,
    READ,
    UseCases,
    existing_model,
    existing_version,
)


class AliasUseCases(UseCases):
    def set_alias(self, principal: Principal, name: str, alias: str, version: int, reason: str = "") -> AliasMove:
        self._require_alias_rights(principal, alias)
        validate_model_name(name)
        validate_version(version)
        with self._store.transaction(write=True) as tx:
            tx.lock_model(name)
            target = existing_version(tx, name, version)
            if target.status in (VersionStatus.ARCHIVED, VersionStatus.FAILED_REGISTRATION):
                raise FailedPrecondition(f"{name} version {version} is {target.status.value}: an alias cannot name it")
            current = tx.get_alias(name, alias)
            move = AliasMove(name, alias, current, version, principal.name, self._now(), reason)
            if current != version:  # setting an alias to where it already points is a no-op, not history
                self._move(tx, move)
            return move

    def delete_alias(self, principal: Principal, name: str, alias: str, reason: str = "") -> AliasMove:
        self._require_alias_rights(principal, alias)
        validate_model_name(name)
        with self._store.transaction(write=True) as tx:
            tx.lock_model(name)
            current = tx.get_alias(name, alias)
            if current is None:
                existing_model(tx, name)
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            move = AliasMove(name, alias, current, None, principal.name, self._now(), reason)
            self._move(tx, move)
            return move

    def resolve_alias(self, principal: Principal, name: str, alias: str, as_of: datetime | None = None) -> ModelVersion:
        """The version an alias names now, or named at `as_of`; `latest` is the newest READY version."""
        principal.require("resolve aliases", READ)
        validate_model_name(name)
        with self._store.transaction() as tx:
            if alias == LATEST and as_of is None:
                ready = tx.list_versions(name, (VersionStatus.READY,), "", {}, None, 1)
                if not ready:
                    existing_model(tx, name)
                    raise NotFound(f"model {name!r} has no READY version")
                return ready[0]
            validate_alias(alias)
            if as_of is None:
                number = tx.get_alias(name, alias)
                when = "now"
            else:
                move = tx.alias_as_of(name, alias, as_of)
                number = move.to_version if move else None
                when = f"at {as_of.isoformat()}"
            if number is None:
                existing_model(tx, name)  # checked only on a miss: the hit path is the hot one
                raise NotFound(f"alias {alias!r} of model {name!r} names no version {when}")
            return existing_version(tx, name, number)

    def alias_history(
        self, principal: Principal, name: str, alias: str, size: int = 0, token: str = ""
    ) -> Page[AliasMove]:
        principal.require("read alias history", READ)
        validate_model_name(name)
        validate_alias(alias)
        limit = page_size(size)
        before = decode_token(token, int)
        with self._store.transaction() as tx:
            existing_model(tx, name)
            moves = tx.alias_history(name, alias, before[0] if before else None, limit)
        if not moves and before is None:
            raise NotFound(f"model {name!r} has no alias {alias!r} and never had")
        return Page([m for _, m in moves], encode_token(moves[-1][0]) if len(moves) == limit else "")

    def _require_alias_rights(self, principal: Principal, alias: str) -> None:
        validate_alias(alias)
        if alias in self.policy.protected_aliases:
            principal.require(f"move the protected alias {alias!r}", MOVE_PROTECTED_ALIAS)
        else:
            principal.require("move aliases", MOVE_ALIAS)

    def _move(self, tx: RegistryTransaction, move: AliasMove) -> None:
        tx.move_alias(move)
        tx.record(convert.alias_moved(move))
