"""`python -m modelyard.registry` and the console script `modelyard-registry`."""

from modelyard.registry.bootstrap import build
from modelyard.registry.config import RegistrySettings
from modelyard.runtime import run_service


def main() -> None:
    run_service(RegistrySettings, build)


if __name__ == "__main__":
    main()
