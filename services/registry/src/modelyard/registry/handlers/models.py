"""The registry's use cases, registered models and their tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modelyard.auth import Principal
from modelyard.registry import convert
from modelyard.registry.domain.errors import (
    AlreadyExists,
    NotFound,
)
from modelyard.registry.domain.model import (
    RegisteredModel,
    validate_description,
    validate_model_name,
    validate_tags,
    validate_version,
)
from modelyard.registry.domain.pagination import Page, decode_token, encode_token, page_size
from modelyard.registry.handlers.base import (
    PUBLISH,
    READ,
    UseCases,
    existing_version,
)


class ModelUseCases(UseCases):
    def create_model(
        self, principal: Principal, name: str, description: str = "", owner: str = "", tags: Mapping[str, str] = {}
    ) -> RegisteredModel:
        principal.require("create models", PUBLISH)
        model = RegisteredModel(
            name=validate_model_name(name),
            description=validate_description(description),
            owner=owner or principal.name,
            tags=validate_tags(tags),
            created_by=principal.name,
            created_at=self._now(),
        )
        with self._store.transaction(write=True) as tx:
            if not tx.add_model(model):
                raise AlreadyExists(f"model {name!r} already exists")
            tx.record(convert.model_created(model))
        return model

    def get_model(self, principal: Principal, name: str) -> RegisteredModel:
        principal.require("read models", READ)
        with self._store.transaction() as tx:
            model = tx.get_model(validate_model_name(name))
        if model is None:
            raise NotFound(f"model {name!r} not found")
        return model

    def list_models(
        self,
        principal: Principal,
        name_contains: str = "",
        tags: Mapping[str, str] = {},
        size: int = 0,
        token: str = "",
    ) -> Page[RegisteredModel]:
        principal.require("list models", READ)
        limit = page_size(size)
        after = decode_token(token, str)
        with self._store.transaction() as tx:
            models = tx.list_models(name_contains, validate_tags(tags), after[0] if after else None, limit)
        return Page(models, encode_token(models[-1].name) if len(models) == limit else "")

    def update_tags(
        self, principal: Principal, name: str, version: int, set_tags: Mapping[str, str], remove: Sequence[str]
    ) -> dict[str, str]:
        """Set and remove tags of a model (version 0) or of one of its versions; the tags afterwards."""
        principal.require("change tags", PUBLISH)
        validate_model_name(name)
        validate_tags(set_tags)
        validate_tags(dict.fromkeys(remove, ""))
        with self._store.transaction(write=True) as tx:
            model_id = tx.lock_model(name)
            if model_id is None:
                raise NotFound(f"model {name!r} not found")
            if version:
                existing_version(tx, name, validate_version(version))
            tx.update_tags(name, version, set_tags, remove)
            tags = tx.tags_of(model_id, version)
            tx.record(convert.tags_changed(name, version, tags, principal.name))
        return tags
