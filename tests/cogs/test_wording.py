"""How the core's facts read on Discord: refusals, the near-limit warning (timestamps as tags), /settings."""

from __future__ import annotations

import pytest

from cogs._i18n import ENGLISH, words
from cogs._wording import (
    _outcome_count,
    error_text,
    limit_change_text,
    near_limit_warning,
    percent,
    refusal_message,
    usage_lines,
)
from cogs.settings import settings_lines
from core.budgets import parse_limit_change
from core.errors import ChannelNotAllowed, OwnVideoReported, QuotaExceeded, UserFacingError
from core.models import GuildSettings, JobStatus, Limits, RefusalReason, Usage
from core.quota import check_limits, windows_at
from core.settings import SafetyMode
from tests.core.test_quota import WINDOWS, usage


def test_daily_refusal_says_numbers_and_reset() -> None:
    """The daily refusal names the limit, what is left and when it resets (Discord timestamp)."""
    refusal = check_limits(usage(today=4_700_000), 600_000, 0.0)
    assert refusal is not None and refusal.reason is RefusalReason.DAILY
    text = refusal_message(ENGLISH, refusal, 600_000)
    assert "$0.60" in text and "$0.30" in text and "$5.00" in text
    assert f"<t:{int(WINDOWS.day_end)}:R>" in text


def test_monthly_refusal_names_the_monthly_limit() -> None:
    """With both limits hit, the refusal speaks of the monthly one."""
    refusal = check_limits(usage(today=4_900_000, month=9_900_000, monthly_micros=10_000_000), 600_000, 0.0)
    assert refusal is not None
    assert "monthly" in refusal_message(ENGLISH, refusal, 600_000)


def test_guild_budget_refusal_says_when_it_resets() -> None:
    """The guild's monthly budget refuses everyone once spent, until the month ends."""
    refusal = check_limits(usage(guild=99_800_000, guild_monthly_micros=100_000_000), 600_000, 0.0)
    assert refusal is not None and refusal.reason is RefusalReason.GUILD_BUDGET
    text = refusal_message(ENGLISH, refusal, 600_000)
    assert "$99.80" in text and "$100.00" in text and f"<t:{int(WINDOWS.month_end)}:R>" in text


def test_cooldown_refusal_says_when_the_next_job_may_start() -> None:
    """A job too soon after the last is refused until the cooldown ends."""
    refusal = check_limits(usage(last=100.0, cooldown_s=30.0), 1, 110.0)
    assert refusal is not None and refusal.reason is RefusalReason.COOLDOWN and refusal.frees_at == 130.0
    assert "<t:130:R>" in refusal_message(ENGLISH, refusal, 1)
    assert check_limits(usage(last=100.0, cooldown_s=30.0), 1, 131.0) is None


def test_active_refusal_says_the_limit() -> None:
    """The active-jobs refusal says how many are running and the limit."""
    refusal = check_limits(usage(active=2), 1, 0.0)
    assert refusal is not None
    text = refusal_message(ENGLISH, refusal, 1)
    assert "2 videos in progress" in text and "the most you can have at once" in text


def test_warning_at_80_percent() -> None:
    """At 80 % of the daily limit the acknowledgement warns, with the reset time; below it does not."""
    warning = near_limit_warning(ENGLISH, usage(today=4_000_000))
    assert warning is not None and "80%" in warning and f"<t:{int(WINDOWS.day_end)}:R>" in warning
    assert near_limit_warning(ENGLISH, usage(today=3_900_000)) is None


def test_the_operator_refusal_keeps_its_figure_to_itself() -> None:
    """Refused by the operator's day ceiling, a member learns when to retry, not the operator's amount."""
    limits = Limits(None, None, operator_daily_micros=50_000_000)
    usage = Usage(0, 0, 0, 0, None, limits, windows_at(1_000.0), operator_spent_today_micros=49_950_000)
    refusal = check_limits(usage, 100_000, 1_000.0)
    assert refusal is not None and refusal.reason is RefusalReason.OPERATOR_DAILY
    text = refusal_message(ENGLISH, refusal, 100_000)
    assert text.startswith("The bot has reached its spending limit for today") and "<t:86400:R>" in text
    assert "$" not in text


def test_settings_lines_show_the_switches() -> None:
    """/settings show reports consent and DMs as yes/no."""
    lines = settings_lines(
        ENGLISH, GuildSettings(1, consent_required=False, dms_allowed=True), SafetyMode.FAST
    )
    assert "Consent statement before a member's first video: no" in lines
    assert "Results sent by DM when the channel can't be used: yes" in lines


def test_the_flagged_line_does_not_repeat_itself_when_withholding_everywhere() -> None:
    """With withhold_flagged on, the flagged-videos line says 'withheld' once."""
    lines = settings_lines(ENGLISH, GuildSettings(1, withhold_flagged=True), SafetyMode.FAST)
    (flagged,) = [line for line in lines if line.startswith("Flagged videos:")]
    assert flagged.startswith("Flagged videos: withheld everywhere")
    assert flagged.count("withheld") == 1, flagged


def test_errors_that_carry_facts_are_worded_here() -> None:
    """A core error with facts reads as it always did; a plain one is its own message."""
    many = tuple(range(1, 13))
    assert (
        error_text(ENGLISH, ChannelNotAllowed((5, 6)))
        == "/animate can't be used in this channel. Try <#5>, <#6>."
    )
    assert error_text(ENGLISH, ChannelNotAllowed(many)).endswith("<#9>, <#10>, ….")
    assert error_text(ENGLISH, OwnVideoReported()) == "This is your own video: use **Delete** to remove it."
    refusal = check_limits(usage(active=2), 1, 0.0)
    assert refusal is not None
    assert error_text(ENGLISH, QuotaExceeded(refusal, 1)) == refusal_message(ENGLISH, refusal, 1)
    assert error_text(ENGLISH, UserFacingError("Plain words.")) == "Plain words."


def test_budget_changes_read_as_the_lines_of_budget_show() -> None:
    """Each /budget set option's new value reads like its /budget show line; bad values say what works."""
    cases = {
        ("daily", "2.5"): "Per member, per day: $2.50",
        ("monthly", "unlimited"): "Per member, per month: unlimited",
        ("active", "3"): "Videos in progress per member: 3",
        ("cooldown", "none"): "Cooldown between videos: none",
        ("cooldown", "30"): "Cooldown between videos: 30 s",
        ("budget", "default"): "Monthly budget: back to the default",
        ("confirm", "never"): "Members confirm a cost from: never",
    }
    for (option, text), expected in cases.items():
        assert limit_change_text(ENGLISH, parse_limit_change(option, text)) == expected
    with pytest.raises(UserFacingError) as refused:
        parse_limit_change("budget", "lots")
    assert error_text(words("de"), refused.value) == (
        "`lots` ist kein Betrag für das Monatsbudget des Servers. "
        "Nimm Dollar wie `2.50`, oder `unlimited`, oder `default`."
    )


def test_counts_take_the_plural_form_of_the_language() -> None:
    """/usage's videos in progress and /budget usage's outcomes agree with their count in every language."""
    assert _outcome_count(words("pt-BR"), JobStatus.SUCCEEDED, 1) == "1 concluído"
    assert _outcome_count(words("pt-BR"), JobStatus.SUCCEEDED, 2) == "2 concluídos"
    assert _outcome_count(words("es-ES"), JobStatus.FAILED, 1) == "1 fallido"
    assert _outcome_count(ENGLISH, JobStatus.FAILED, 3) == "3 failed"
    lines = usage_lines(words("de"), usage(active=1))
    assert "1 Video in Arbeit, höchstens 2 gleichzeitig" in lines
    assert "2 Videos in Arbeit, höchstens 2 gleichzeitig" in usage_lines(words("de"), usage(active=2))


def test_percentages_are_written_as_each_language_writes_them() -> None:
    """80% in English and Portuguese, 80 % in German and Spanish."""
    assert [percent(words(locale), 80) for locale in ("en-US", "de", "es-ES", "pt-BR")] == [
        "80%",
        "80 %",
        "80 %",
        "80%",
    ]
