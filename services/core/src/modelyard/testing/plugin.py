"""Pytest fixtures for real parts: the Kafka-protocol broker (one fixture, one code path) and PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelyard.kafka.embedded import EmbeddedBroker


class TestEnvironment(BaseSettings):
    """What the environment tells the test suite about real parts it may use."""

    __test__ = False  # not a test class
    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore")

    kafka_bootstrap: str | None = None
    test_postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    # CI=true (set by CI runners) makes every real-part test mandatory: none may skip for a missing part.
    ci: bool = Field(False, validation_alias=AliasChoices("CI", "MODELYARD_CI"))


@pytest.fixture(scope="session")
def test_environment() -> TestEnvironment:
    return TestEnvironment()


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
    except Exception:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def kafka_broker(environment: TestEnvironment) -> Iterator[str]:
    """Bootstrap address of a real Kafka-protocol broker: a configured cluster, else testcontainers' Kafka when
    a Docker engine answers, else the embedded Tansu binary on a free loopback port."""
    if environment.kafka_bootstrap:
        yield environment.kafka_bootstrap
    elif _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap(test_environment: TestEnvironment) -> Iterator[str]:
    with kafka_broker(test_environment) as bootstrap:
        yield bootstrap


def _postgres_reachable(url: str) -> bool:
    import sqlalchemy as sa  # the `sql` extra: only the services with a database need it

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_admin_url(test_environment: TestEnvironment) -> str:
    """Where to create scratch databases: skips locally when PostgreSQL is unreachable, fails on CI."""
    if not _postgres_reachable(test_environment.test_postgres_url):
        if test_environment.ci:
            pytest.fail(f"PostgreSQL at {test_environment.test_postgres_url} is unreachable; it must run on CI")
        pytest.skip("PostgreSQL is unreachable (these tests run on CI)")
    return test_environment.test_postgres_url
