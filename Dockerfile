# syntax=docker/dockerfile:1
# One image for all four services (intake, routing, notification, certification).
# docker-compose.yml picks the service with `command: ["python", "-m", "<service>"]`.
#
#   docker build -t formation-events:local .
#   docker run --rm formation-events:local python -m intake

ARG PYTHON_VERSION=3.11
# Same uv as the one that wrote uv.lock, so `--frozen` reads it as-is.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------- builder ---
FROM python:${PYTHON_VERSION}-slim AS builder

COPY --from=uv /uv /uvx /usr/local/bin/

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
# The runtime set only: no `dev` (tests), no `infra` (a mongod wheel for Docker-free use).
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group infra --no-install-project

# Then the project itself, installed into the venv as a regular (non-editable) package.
COPY README.md ./
COPY schemas/ schemas/
COPY services/ services/
COPY intake/ intake/
COPY routing/ routing/
COPY notification/ notification/
COPY certification/ certification/
COPY analytics/ analytics/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group infra --no-editable

# ---------------------------------------------------------------- runtime ---
FROM python:${PYTHON_VERSION}-slim AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app --shell /usr/sbin/nologin app

COPY --from=builder --chown=app:app /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app
USER app

# 8001 intake, 8002 routing, 8003 notification, 8004 certification (<SERVICE>_HTTP_PORT).
EXPOSE 8001 8002 8003 8004

CMD ["python", "-m", "routing"]
