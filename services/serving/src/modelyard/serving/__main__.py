"""`python -m modelyard.serving` and the console script `modelyard-serving`."""

from modelyard.runtime import run_service
from modelyard.serving.bootstrap import build, service
from modelyard.serving.config import ServingSettings


def main() -> None:
    run_service(ServingSettings, lambda settings: service(build(settings)), workers=worker_count)


def worker_count(settings: ServingSettings) -> int:
    """A worker process runs the service itself; the process started by hand supervises `workers` of them."""
    return 1 if settings.worker is not None else settings.workers


if __name__ == "__main__":
    main()
