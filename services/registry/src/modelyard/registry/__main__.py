"""`python -m modelyard.registry` and the console script `modelyard-registry`."""

from modelyard.registry.bootstrap import build, service
from modelyard.registry.config import RegistrySettings
from modelyard.runtime import run_service


def main() -> None:
    run_service(RegistrySettings, lambda settings: service(build(settings)))


if __name__ == "__main__":
    main()
