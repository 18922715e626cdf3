"""All four services in the test's process, on free loopback ports: what tests of a cross-cutting edge (access,
TLS) start. The services are imported when called: the core member does not depend on them, the workspace does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from modelyard.runtime import Service


@contextlib.asynccontextmanager
async def four_services(
    tmp: Path, kafka_bootstrap: str, serving: Mapping[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[dict[str, Service]]:
    """Registry, governance (over an in-memory catalogue), monitor and serving, running, each with `overrides` on
    top of its test settings (serving with `serving` on top of those)."""
    from modelyard.governance import bootstrap as governance_bootstrap
    from modelyard.governance.testing import InMemoryCatalog, governance_settings
    from modelyard.monitor import bootstrap as monitor_bootstrap
    from modelyard.monitor.config import MonitorSettings
    from modelyard.monitor.testing import setting_values
    from modelyard.registry import bootstrap as registry_bootstrap
    from modelyard.registry.testing import registry_settings
    from modelyard.serving import bootstrap as serving_bootstrap
    from modelyard.serving.testing import settings_for

    for name in ("registry", "governance", "monitor", "serving"):
        (tmp / name).mkdir()
    services = {
        "registry": registry_bootstrap.service(
            registry_bootstrap.build(registry_settings(tmp / "registry", kafka_bootstrap=kafka_bootstrap, **overrides))
        ),
        "governance": governance_bootstrap.service(
            governance_bootstrap.build(
                governance_settings(tmp / "governance", kafka_bootstrap=kafka_bootstrap, **overrides),
                catalog=InMemoryCatalog(),
            )
        ),
        "monitor": monitor_bootstrap.service(
            monitor_bootstrap.build(
                MonitorSettings.model_validate({**setting_values(kafka_bootstrap, tmp / "monitor"), **overrides})
            )
        ),
        "serving": serving_bootstrap.service(
            serving_bootstrap.build(
                settings_for(tmp / "serving", kafka_bootstrap=kafka_bootstrap, **{**overrides, **(serving or {})})
            )
        ),
    }
    async with contextlib.AsyncExitStack() as stack:
        for service in services.values():
            await stack.enter_async_context(service.running())
        yield services
