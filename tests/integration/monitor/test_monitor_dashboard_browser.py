"""The dashboard in headless Chromium (Debian chromium + chromium-driver, installed by `make browser`): the page of
a drifted model version loads without console errors and shows the incident; a screenshot is kept."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI

from modelyard.contracts.events.v1 import serving_events_pb2
from modelyard.monitor.bootstrap import build
from modelyard.monitor.domain.simulation import Shift
from modelyard.monitor.entrypoints import dashboard
from modelyard.monitor.testing import consumed, prediction_events, settings, write_reference
from modelyard.runtime.http_server import HttpEndpoint

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def browse(url: str, screenshot: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Console errors and the features the incident rows are about, of the page at `url`, in headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1800"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    try:
        driver.get(url)
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.incident")
        features = [f for row in rows for f in json.loads(str(row.get_attribute("data-features")))]
        driver.save_screenshot(str(screenshot))
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    return errors, features


async def test_dashboard_loads_without_errors_and_shows_the_seeded_incident(tmp_path: Path) -> None:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromedriver must be installed on CI (make browser)")
        pytest.skip("NOTICE: chromium/chromedriver not installed (make browser): dashboard browser test skipped")
    config = settings("127.0.0.1:1", tmp_path)  # no broker: the events are handed to the monitor directly
    write_reference(config.resolved_reference_dir, "credit", 1)
    parts = build(config)
    shift = Shift(numeric_features=(4,), mean_sd=0.75)
    for offset, event in enumerate(prediction_events("credit", 1, 1500, seed=5, shift=shift)):
        assert isinstance(event.payload, serving_events_pb2.PredictionBatch)
        parts.monitor.handle_predictions([consumed(offset, event.payload)])
    app = FastAPI()
    app.include_router(dashboard.router(parts.monitor))
    server = HttpEndpoint(app, "127.0.0.1", 0)
    await server.start()
    artifacts = Path(os.environ.get("MODELYARD_TEST_ARTIFACTS", tmp_path))
    await asyncio.to_thread(artifacts.mkdir, parents=True, exist_ok=True)
    screenshot = artifacts / "monitor-dashboard.png"
    try:
        url = f"http://127.0.0.1:{server.port}/dashboard/credit/1"
        errors, features = await asyncio.to_thread(browse, url, screenshot)
    finally:
        await server.stop(1.0)
    assert errors == []
    assert "x[4]" in features
    assert screenshot.stat().st_size > 10_000
