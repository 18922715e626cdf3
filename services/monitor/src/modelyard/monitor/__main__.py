"""`python -m modelyard.monitor` and the console script `modelyard-monitor`."""

from modelyard.monitor.bootstrap import build, service
from modelyard.monitor.config import MonitorSettings
from modelyard.runtime import run_service


def main() -> None:
    run_service(MonitorSettings, lambda settings: service(build(settings)))


if __name__ == "__main__":
    main()
