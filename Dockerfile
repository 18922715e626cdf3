# syntax=docker/dockerfile:1.7
# One image per service, each with only its own dependencies (serving carries no SQLAlchemy, the registry no SciPy):
#   docker build --target registry -t modelyard/registry .   (targets: registry, serving, monitor, governance)
# docker-compose.yml and deploy/ build and run these targets; tests/integration/deploy checks them statically.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# uv pinned to the version that writes uv.lock, so `--frozen` reads it exactly as the developers' uv does.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build-base
COPY --from=uv /uv /usr/local/bin/uv
# The base image's Python only; compiled bytecode so the first request does not pay for it; a copied (not
# hard-linked) venv because it moves to another stage.
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Manifests first: the dependency layer is rebuilt only when a pyproject or the lock changes, not on every edit.
COPY pyproject.toml uv.lock README.md ./
COPY services/core/pyproject.toml services/core/
COPY services/registry/pyproject.toml services/registry/
COPY services/serving/pyproject.toml services/serving/
COPY services/monitor/pyproject.toml services/monitor/
COPY services/governance/pyproject.toml services/governance/
# The CLI member is not installed in a service image, but uv reads every member's manifest to check the lock.
COPY services/cli/pyproject.toml services/cli/

FROM build-base AS build-registry
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-workspace --package modelyard-registry
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable --package modelyard-registry

FROM build-base AS build-serving
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-workspace --package modelyard-serving
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable --package modelyard-serving

FROM build-base AS build-monitor
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-workspace --package modelyard-monitor
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable --package modelyard-monitor

FROM build-base AS build-governance
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-workspace --package modelyard-governance
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable --package modelyard-governance

# The runtime has no uv and no sources: the venv (installed non-editable) is all a service needs.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 modelyard \
    && useradd --system --uid 10001 --gid modelyard --home-dir /data --no-create-home modelyard \
    && mkdir /data && chown modelyard:modelyard /data
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /data
USER 10001:10001

FROM runtime AS registry
COPY --from=build-registry /app/.venv /app/.venv
# Loopback (the settings' local default) would be unreachable from outside the container.
ENV MODELYARD_REGISTRY_HOST=0.0.0.0 MODELYARD_REGISTRY_DATA_DIR=/data
EXPOSE 50051 8081
# /readyz answers 503 until the service is ready; urlopen raises on it. The port follows an override.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "modelyard.runtime.probe", "registry"]
CMD ["python", "-m", "modelyard.registry"]

FROM runtime AS serving
COPY --from=build-serving /app/.venv /app/.venv
ENV MODELYARD_SERVING_HOST=0.0.0.0 MODELYARD_SERVING_DATA_DIR=/data
EXPOSE 8001 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "modelyard.runtime.probe", "serving"]
CMD ["python", "-m", "modelyard.serving"]

FROM runtime AS monitor
COPY --from=build-monitor /app/.venv /app/.venv
ENV MODELYARD_MONITOR_HOST=0.0.0.0 MODELYARD_MONITOR_DATA_DIR=/data
EXPOSE 50053 8083
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "modelyard.runtime.probe", "monitor"]
CMD ["python", "-m", "modelyard.monitor"]

FROM runtime AS governance
COPY --from=build-governance /app/.venv /app/.venv
ENV MODELYARD_GOVERNANCE_HOST=0.0.0.0 MODELYARD_GOVERNANCE_DATA_DIR=/data
EXPOSE 50054 8084
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "modelyard.runtime.probe", "governance"]
CMD ["python", "-m", "modelyard.governance"]
