"""Relational storage shared by the services that keep state in SQL (registry, governance).

Optional: install `modelyard-core[sql]`. Engine factory for SQLite and PostgreSQL, an Alembic runner and the
transactional outbox (table mixin + relay to Kafka).
"""
