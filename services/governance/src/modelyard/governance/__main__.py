"""`python -m modelyard.governance` and the console script `modelyard-governance`."""

from modelyard.governance.bootstrap import build
from modelyard.governance.config import GovernanceSettings
from modelyard.runtime import run_service


def main() -> None:
    run_service(GovernanceSettings, build)


if __name__ == "__main__":
    main()
