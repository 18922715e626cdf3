"""How every Kafka client of a service authenticates to the brokers and encrypts its traffic: SSL (optionally with
a client certificate) and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), as aiokafka takes them."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from modelyard.tls import TlsError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseModel):
    """Encryption and authentication of the service's Kafka clients (producers, consumers, admin, probes)."""

    model_config = ConfigDict(frozen=True)

    protocol: SecurityProtocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    ca_file: Path | None = Field(
        None, description="CA bundle (PEM) the brokers' certificates are checked against; default: system CAs"
    )
    cert_file: Path | None = Field(None, description="client certificate (PEM) for brokers that require one")
    key_file: Path | None = Field(None, description="private key (PEM) of cert_file")
    sasl_mechanism: SaslMechanism | None = Field(None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        sasl = {"sasl_mechanism": self.sasl_mechanism, "sasl_username": self.sasl_username}
        if self.uses_sasl:
            missing = [name for name, value in sasl.items() if not value]
            if self.sasl_password is None or not self.sasl_password.get_secret_value():
                missing.append("sasl_password")
            if missing:
                raise ValueError(f"kafka_security.protocol={self.protocol} needs {', '.join(missing)}")
        elif any(sasl.values()) or self.sasl_password is not None:
            raise ValueError(f"SASL settings have no effect with kafka_security.protocol={self.protocol}")
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        if not self.uses_ssl and any(files.values()):
            raise ValueError(f"SSL files have no effect with kafka_security.protocol={self.protocol}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("kafka_security.cert_file and kafka_security.key_file go together")
        return self

    def production_problems(self) -> list[str]:
        if self.protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN":
            return ["kafka_security: SASL PLAIN without SSL sends the password in clear (use SASL_SSL or SCRAM)"]
        return []

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the brokers' certificates and host names; presents the client certificate when there is one."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file is not None:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load kafka_security's files ({self.ca_file}, {self.cert_file}): {exc}") from None
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient,
        AIOKafkaClient)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_ssl:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            password = self.sasl_password.get_secret_value() if self.sasl_password else ""
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": password,
            }
        return options


PLAINTEXT = KafkaSecurity()
