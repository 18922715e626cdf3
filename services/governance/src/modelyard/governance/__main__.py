"""`python -m modelyard.governance` and the console script `modelyard-governance`."""

from modelyard.governance.bootstrap import build, service
from modelyard.governance.config import GovernanceSettings
from modelyard.runtime import run_service


def main() -> None:
    run_service(GovernanceSettings, lambda settings: service(build(settings)))


if __name__ == "__main__":
    main()
