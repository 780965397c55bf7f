# Two stages: uv builds the virtualenv from the lockfile; the runtime image gets only that and the code.
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY bot.py ./
COPY core ./core
COPY storage ./storage
COPY cogs ./cogs
COPY web ./web

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app bot && mkdir /data && chown bot /data
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 DATABASE_URL=sqlite:////data/bot.db
# The HTTP server is on in the image, on the container's own loopback: the HEALTHCHECK below reaches it
# there, and nothing outside the container can (no port is published, and loopback is per container).
# Set HTTP_HOST=0.0.0.0 (and publish the port) for Prometheus or Runware's webhooks to reach it.
ENV HTTP_PORT=8080 HTTP_HOST=127.0.0.1
EXPOSE 8080
USER bot
VOLUME ["/data"]
# GET /healthz (the slim image has no curl; the check is standard-library Python). With HTTP_PORT unset or
# empty there is no server to ask, and the check passes: it never marks a bot unhealthy for that alone.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "web.healthcheck"]
ENTRYPOINT ["python", "bot.py"]
