"""House rules that code review alone would miss: import boundaries between the layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    return files


def test_core_and_storage_never_import_discord() -> None:
    """Nothing in core/ or storage/ imports discord."""
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("core", "storage")
        for p in python_files(folder)
        if any(m == "discord" or m.startswith("discord.") for m in imported_modules(p))
    ]
    assert offenders == []


def project_modules() -> set[str]:
    """The top-level names of this project's own code (packages and modules at the root)."""
    return {p.stem for p in ROOT.glob("*.py")} | {p.parent.name for p in ROOT.glob("*/__init__.py")}


def test_core_never_imports_storage() -> None:
    """core/ declares the storage it needs (core/ports.py) and never imports storage/."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "storage")
        for p in python_files("core")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_storage_imports_only_core_and_itself() -> None:
    """storage/ implements the core's ports: of this project's code it imports core/ and storage/ only."""
    own = project_modules() - {"core", "storage"}
    assert {"bot", "cogs", "tests"} <= own
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] in own)
        for p in python_files("storage")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_cogs_never_touch_storage_or_http() -> None:
    """cogs/ reach the database and the network only through the core."""
    banned = ("storage", "aiohttp", "aiosqlite", "sqlite3", "asyncpg")
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] in banned)
        for p in python_files("cogs")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_web_serves_through_the_core() -> None:
    """web/ (the HTTP edge) reaches the database and Discord only through what bot.py hands it."""
    banned = ("storage", "cogs", "discord", "aiosqlite", "sqlite3", "asyncpg")
    offenders = {
        str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] in banned)
        for p in python_files("web")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_nothing_imports_bot_at_runtime() -> None:
    """bot.py is the entry point: modules refer to it only under TYPE_CHECKING."""
    offenders = []
    for folder in ("core", "storage", "cogs", "web"):
        for path in python_files(folder):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            guarded = {
                id(n)
                for node in ast.walk(tree)
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for n in ast.walk(node)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom | ast.Import) and id(node) not in guarded:
                    mods = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                    if "bot" in mods:
                        offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# Discord's markup: a timestamp tag, a user or role mention, a channel mention, bold (`**` before a word:
# `***` standing for a scrubbed secret is no markup).
DISCORD_MARKUP = re.compile(r"<t:|<@|<#|\*\*(?=[^\s*])")


def string_parts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal in a module with its line, docstrings aside (they are for readers of the code):
    plain strings and the literal parts of f-strings. `**` as Python's power operator is code, not a
    string, and is not looked at."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_core_says_no_discord_markup() -> None:
    """core/ returns facts; the cogs word them for Discord (timestamps, mentions, bold)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {text!r}"
        for path in python_files("core")
        for line, text in string_parts(ast.parse(path.read_text(encoding="utf-8")))
        if DISCORD_MARKUP.search(text)
    ]
    assert offenders == []


def test_the_markup_check_sees_f_strings_and_not_code() -> None:
    """An f-string's literal parts are checked (`f"<t:{x}:R>"` is caught); the power operator and a
    docstring are not."""
    source = (
        'def f():\n    """10**8 bytes"""\n    return f"<t:{when}:R> **Bold** by <@{user}>", 2 ** 3, "***"'
    )
    found = [text for _, text in string_parts(ast.parse(source)) if DISCORD_MARKUP.search(text)]
    assert found == ["<t:", ":R> **Bold** by <@"]


def test_the_fakes_mixins_are_not_shadowed() -> None:
    """A fake split into a server class and route mixins defines each method once: a copy left in the
    server class would silently win over the mixin's (and a fix made in the mixin would change nothing)."""
    from tests.fakes.discord import FakeDiscord

    shadowed = [
        f"{base.__name__}.{name}"
        for base in FakeDiscord.__mro__[1:]
        if base.__module__.startswith("tests.fakes.")
        for name, value in vars(base).items()
        if callable(value) and not name.startswith("__") and name in vars(FakeDiscord)
    ]
    assert shadowed == []
