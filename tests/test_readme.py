"""The README stays true: its settings table and its two set-up commands match the code."""

from __future__ import annotations

import re
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_settings_table() -> None:
    """Each setting the code reads has a row in the README's settings table."""
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} <= rows


def test_the_settings_table_lists_nothing_the_code_does_not_read() -> None:
    """No row names a setting that does not exist."""
    rows = set(re.findall(r"^\| `([A-Z_]+)` \| `", README, flags=re.MULTILINE))
    rows |= set(re.findall(r"^\| `([A-Z_]+)` \| \(", README, flags=re.MULTILINE))
    assert rows <= {name.upper() for name in Settings.model_fields}


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls the test command written in the README, word for word."""
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_env_example_shows_every_operator_setting() -> None:
    """.env.example has a line for every setting (test-rig ones aside), each with its default value."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    shown = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    rigs = {"DISCORD_API_BASE", "DISCORD_GATEWAY_URL"}
    assert set(shown) == {name.upper() for name in Settings.model_fields} - rigs
    for name, value in shown.items():
        default = Settings.model_fields[name.lower()].default
        if value and default not in (None, []):
            assert str(default).removesuffix(".0") == value.removesuffix(".0"), name


def test_every_path_in_where_things_live_exists() -> None:
    """Each file or folder the README's layout table names is in the repository."""
    table = README.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", table, flags=re.MULTILINE)
    named = [p for cell in paths for p in re.findall(r"`([^`]+)`", cell)]
    assert len(named) >= 15
    assert [p for p in named if not (ROOT / p).exists()] == []


def test_where_things_live_names_every_code_folder() -> None:
    """Every folder of code or migrations under core/, storage/ and cogs/ is in the layout table: itself,
    something inside it, or a folder it lies in."""
    table = README.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \|", table, flags=re.MULTILINE)
    named = [p.rstrip("/") for cell in cells for p in re.findall(r"`([^`]+)`", cell)]
    folders = [
        d.relative_to(ROOT).as_posix()
        for top in ("core", "storage", "cogs")
        for d in (ROOT / top).rglob("*")
        if d.is_dir() and d.name != "__pycache__" and (any(d.glob("*.py")) or any(d.glob("*.sql")))
    ]
    missing = [
        d for d in folders if not any(p == d or p.startswith(d + "/") or d.startswith(p + "/") for p in named)
    ]
    assert missing == []
