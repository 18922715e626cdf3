"""`python -m modelyard.serving` and the console script `modelyard-serving`."""

from modelyard.runtime import run_service
from modelyard.serving.bootstrap import build, service
from modelyard.serving.config import ServingSettings


def main() -> None:
    run_service(ServingSettings, lambda settings: service(build(settings)))


if __name__ == "__main__":
    main()
