"""`python -m modelyard.serving` and the console script `modelyard-serving`."""

from modelyard.runtime import run_service
from modelyard.serving.bootstrap import build
from modelyard.serving.config import ServingSettings


def main() -> None:
    run_service(ServingSettings, build)


if __name__ == "__main__":
    main()
