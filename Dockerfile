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
USER bot
VOLUME ["/data"]
ENTRYPOINT ["python", "bot.py"]
