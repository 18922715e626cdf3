"""`python -m modelyard.runtime.probe SERVICE [PATH]`: a container's check of its own service, over HTTP or HTTPS as
the service's settings (its environment) say; exit status 0 when PATH (default /readyz) answers 200.

Docker's HEALTHCHECK and Kubernetes' httpGet probes cannot present a client certificate, which a server with mutual
TLS asks of every caller, probes included; this presents the service's own (`tls.client_cert_file`). It dials its
own loopback, so it checks the server's chain (against `tls.ca_file`) but not the name, which is the service's.
It lives in core, not in the CLI, because a service's image holds that service and core only; the settings class is
found by the service's name for the same reason (core does not depend on the services).
"""

from __future__ import annotations

import importlib
import ssl
import sys
import urllib.request

from modelyard.runtime.ports import client_host, format_address
from modelyard.settings import ServiceSettings

TIMEOUT_S = 4.0


def probe_url(settings: ServiceSettings, path: str) -> str:
    scheme = "https" if settings.tls.serves_tls else "http"
    return f"{scheme}://{format_address(client_host(settings.host), settings.http_port)}/{path.lstrip('/')}"


def probe_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """None for a plaintext server."""
    tls = settings.tls
    if not tls.serves_tls:
        return None
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    context.check_hostname = False  # the certificate names the service, not the loopback address dialled here
    if tls.ca_file is None:
        context.verify_mode = ssl.CERT_NONE  # no CA to check against; the peer is this container's own server
    if tls.client_cert_file is not None and tls.client_key_file is not None:
        context.load_cert_chain(str(tls.client_cert_file), str(tls.client_key_file))
    return context


def service_settings(service: str) -> ServiceSettings:
    """`modelyard.<service>.config.<Service>Settings()`, read from the environment."""
    module = importlib.import_module(f"modelyard.{service}.config")
    settings: ServiceSettings = getattr(module, f"{service.capitalize()}Settings")()
    return settings


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m modelyard.runtime.probe SERVICE [PATH]", file=sys.stderr)
        return 2
    settings = service_settings(argv[0])
    url = probe_url(settings, argv[1] if len(argv) == 2 else "/readyz")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S, context=probe_context(settings)) as response:
            return 0 if response.status == 200 else 1
    except (OSError, ssl.SSLError) as exc:  # urllib's HTTPError (a 503) is an OSError too
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
