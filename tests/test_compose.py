"""docker-compose.yml and the Dockerfile (Docker does not run here, so their shape is checked): the bot built
from the Dockerfile, PostgreSQL 15 on a named volume with a pg_isready health check, the bot waiting for it
to be healthy and pointed at it, secrets from .env, the bot's own health check on /healthz, and the
commented second process of a two-shard setup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")


def compose(text: str = TEXT) -> dict[str, Any]:
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_the_bot_waits_for_a_healthy_postgres_on_a_named_volume() -> None:
    """Two services; postgres:15 keeps its data on the named volume and is healthy when pg_isready says so;
    the bot is built from the Dockerfile, reads .env, and starts once the database is healthy."""
    doc = compose()
    assert set(doc["services"]) == {"bot", "postgres"}
    db, bot = doc["services"]["postgres"], doc["services"]["bot"]
    assert db["image"] == "postgres:15"
    volume = db["volumes"][0].split(":")
    assert volume[1] == "/var/lib/postgresql/data" and volume[0] in doc["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert bot["build"] == "." and (ROOT / "Dockerfile").exists()
    assert bot["env_file"] == ".env"
    assert bot["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    env = db["environment"]
    url = bot["environment"]["DATABASE_URL"]
    assert url.startswith(f"postgresql://{env['POSTGRES_USER']}:")
    assert url.endswith(f"@postgres:5432/{env['POSTGRES_DB']}")
    assert Settings(_env_file=None, discord_token="t", runware_api_key="k", database_url=url)  # type: ignore[call-arg]


def test_the_commented_second_process_serves_shard_one() -> None:
    """Uncommented, the second bot service is valid and is the bot again, as shard 1 of 2."""
    block = re.search(r"^  # bot-shard-1:\n(?:  #.*\n)+", TEXT, flags=re.MULTILINE)
    assert block is not None
    doc = compose(TEXT.replace(block.group(0), re.sub(r"^  # ", "  ", block.group(0), flags=re.MULTILINE)))
    second, bot = doc["services"]["bot-shard-1"], doc["services"]["bot"]
    assert second["environment"] == {
        "DATABASE_URL": bot["environment"]["DATABASE_URL"],
        "HTTP_PORT": bot["environment"]["HTTP_PORT"],
        "SHARD_COUNT": "2",
        "SHARD_IDS": "1",
    }
    assert {k: v for k, v in second.items() if k != "environment"} == {
        k: v for k, v in bot.items() if k != "environment"
    }


HEALTHCHECK = ["CMD", "python", "-m", "web.healthcheck"]


def test_the_bot_is_health_checked_on_its_http_server() -> None:
    """The bot service asks /healthz with the stdlib check (the module the image copies), and turns the
    HTTP server on even when .env leaves HTTP_PORT empty (compose's `:-` default)."""
    bot = compose()["services"]["bot"]
    assert bot["healthcheck"]["test"] == HEALTHCHECK
    assert (ROOT / "web" / "healthcheck.py").exists()
    assert bot["environment"]["HTTP_PORT"] == "${HTTP_PORT:-8080}"
    settings = Settings(_env_file=None, discord_token="t", runware_api_key="k", http_port="8080")  # type: ignore[call-arg]
    assert settings.http_port == 8080 and settings.http_host == "127.0.0.1"


def test_the_image_runs_the_same_health_check_on_loopback() -> None:
    """The Dockerfile's HEALTHCHECK runs the same command, with the server on in the image (port 8080, on
    the container's loopback) and the web/ package copied in."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    check = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", dockerfile, flags=re.MULTILINE | re.DOTALL)
    assert check is not None and json.loads(check.group(1)) == HEALTHCHECK[1:]
    assert re.search(r"^ENV HTTP_PORT=8080 HTTP_HOST=127\.0\.0\.1$", dockerfile, flags=re.MULTILINE)
    assert "COPY web ./web" in dockerfile
