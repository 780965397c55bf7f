"""Ventriloquist: the Discord bot process.

python bot.py          start the bot (foreground, logs to stderr, stops on SIGTERM or Ctrl-C)
python bot.py check    check settings, database, Runware and Discord; one line each; exit 1 on failure
python bot.py sync     publish the slash commands globally (needed once per install and upgrade)
python bot.py migrate-db --to postgresql://…
                       copy the SQLite database of DATABASE_URL into an empty PostgreSQL database
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

from cogs.acks import ACK_EDIT_INTERVAL_S
from core.budgets import ALERT_RETRY_AFTER_S, BudgetService
from core.consent import STATEMENT, ConsentService, Statement
from core.errors import UserFacingError
from core.jobs import JobService
from core.models import Job
from core.moderation import ModerationService
from core.observe import NULL_OBSERVER, Observer
from core.ports import JobEvent, StoreUnavailable
from core.runner import JobRunner
from core.runware import ErrorKind, RunwareClient, RunwareError, redact_webhook_secrets
from core.settings import Settings, describe_settings_error
from core.webhooks import WebhookReceiver
from storage import NewerDatabaseError, Store, open_store
from web.health import HealthChecks, add_health_route
from web.metrics import CachedJobCounts, Metrics, add_metrics_route
from web.runware_webhook import add_runware_webhook
from web.server import HttpServer, HttpServerError

log = logging.getLogger("ventriloquist")

# The bot never joins a voice channel: discord.py's start-up warnings that its voice libraries (PyNaCl,
# davey) are not installed would only worry operators.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

# Loaded in this order; a failed load stops start-up.
EXTENSIONS = (
    "cogs.video",
    "cogs.delivery",
    "cogs.reports",
    "cogs.usage",
    "cogs.videos",
    "cogs.budget",
    "cogs.settings",
    "cogs.moderation",
)
_COMMANDS_HASH_KEY = "synced_commands_hash"
RUNNER_STOP_TIMEOUT_S = 10.0
# How often AUDIT_RETENTION_DAYS is applied (by one process of several: the one that claims the duty).
PRUNE_INTERVAL_S = 24 * 3600.0
# How often each process asks whether the pruning is due (a process that pruned may be gone since).
PRUNE_CHECK_S = 3600.0
# Duties: work that one process of several does for all (StateStore.claim_duty).
DUTY_SYNC = "sync-commands"
DUTY_PRUNE = "prune-moderation-records"
# How long a sync claim holds when its process dies mid-sync (it is released when the sync ends).
SYNC_CLAIM_S = 300.0


# Libraries whose DEBUG lines carry secrets (interaction tokens in URLs, SQL parameters): INFO at most.
QUIET_LOGGERS = ("discord", "aiosqlite", "asyncpg")


class SecretsFilter(logging.Filter):
    """Replaces any configured secret that finds its way into a log line (belt and braces)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_webhook_secrets(message)  # tokens of webhook URLs are secrets too
        for secret in self._secrets:
            redacted = redacted.replace(secret, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    """Configure logging once: stderr, one line per record, secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(SecretsFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py's own INFO lines (gateway connects) are useful; its DEBUG is a firehose, and prints the
    # URLs of interaction webhooks (their tokens); aiosqlite's DEBUG prints every statement's parameters.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), logging.INFO))


def point_discord_at(settings: Settings) -> None:
    """Send discord.py's REST calls and gateway to another address (test rigs, API proxies)."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class VideoTree(app_commands.CommandTree["VideoBot"]):
    """The command tree; owns the one error handler for every slash command."""

    async def interaction_check(self, interaction: discord.Interaction[VideoBot], /) -> bool:
        """Every command in a server outside ALLOWED_GUILD_IDS gets a short private refusal, before it
        reads, downloads or charges anything."""
        if interaction.client.moderation.serves(interaction.guild_id):
            return True
        from cogs._i18n import member_words
        from cogs._ui import send
        from core.moderation import NOT_SERVED

        log.info("refused a command in guild=%s, which is not in ALLOWED_GUILD_IDS", interaction.guild_id)
        try:
            await send(interaction, member_words(interaction)(NOT_SERVED))
        except discord.HTTPException as error:
            log.warning("could not refuse a command in guild=%s: %r", interaction.guild_id, error)
        return False

    async def on_error(
        self, interaction: discord.Interaction[VideoBot], error: app_commands.AppCommandError
    ) -> None:
        from cogs._i18n import member_words
        from cogs._ui import GENERIC_APOLOGY, send
        from cogs._wording import error_text, store_unavailable_text

        _ = member_words(interaction)
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(original, UserFacingError):
            await send(interaction, error_text(_, original))
            return
        if isinstance(original, app_commands.CheckFailure):
            # Our checks raise a catalogue sentence (NOT_A_MANAGER…); discord.py's own are English.
            await send(
                interaction, _(str(original)) if str(original) else _("You can't use this command here.")
            )
            return
        command = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(original, StoreUnavailable):
            # The database dropped the connection: a warning (no traceback) and plain words.
            log.warning("command /%s stopped, the database is unavailable (%s)", command, original)
            with contextlib.suppress(discord.HTTPException):
                await send(interaction, store_unavailable_text(_, original.ambiguous))
            return
        log.error(
            "command /%s failed for user=%s guild=%s channel=%s:\n%s",
            command,
            interaction.user.id,
            interaction.guild_id,
            interaction.channel_id,
            "".join(traceback.format_exception(original)),
        )
        try:
            await send(interaction, _(GENERIC_APOLOGY))
        except discord.HTTPException:
            log.warning("could not send the apology for /%s", command)


# Notifications that may have made work due for this process's runner.
WAKING = frozenset({JobEvent.QUEUED, JobEvent.RELEASED, JobEvent.RESULT, JobEvent.RESYNC})


class VideoBot(commands.Bot):
    """The bot: slash commands, the job runner, and delivery of finished jobs."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        runware: RunwareClient,
        run_jobs: bool = True,
        statement: Statement = STATEMENT,
        ack_interval_s: float = ACK_EDIT_INTERVAL_S,
        **options: Any,
    ) -> None:
        """`ack_interval_s`: the least time between two edits of a job's private acknowledgement with its
        place or progress (the outcome is shown at once); shorter in tests, which wait for each change."""
        intents = discord.Intents.none()
        intents.guilds = True  # channel cache: NSFW flags and the guild's upload limit
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=VideoTree,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.settings = settings
        self.store = store
        self.ack_interval_s = ack_interval_s
        # The HTTP server (HTTP_PORT; off when unset), with /healthz and /metrics. Its routes are added
        # here, in the assembly: the app is frozen once it starts, and run_bot starts it before logging in
        # to Discord (a taken port stops start-up at once, and /healthz answers while the gateway connects).
        self.web: HttpServer | None = None
        self.metrics: Metrics | None = None
        self.observer: Observer = NULL_OBSERVER
        self.webhooks: WebhookReceiver | None = None
        if run_jobs and settings.http_port is not None:
            self.web = HttpServer(settings.http_host, settings.http_port)
            self.metrics = self.observer = Metrics()
            runware.observer = self.metrics
            checks = HealthChecks(store.ping, gateway=self.gateway_connected, runner=self.runner_alive)
            add_health_route(self.web.app, checks)
            add_metrics_route(self.web.app, self.metrics, CachedJobCounts(store.count_jobs_by_status))
        # Webhooks need both: a server to receive them and the address Runware reaches it at.
        webhooks_on = run_jobs and settings.http_port is not None and settings.public_url is not None
        self.runner = JobRunner(
            store,
            runware,
            settings,
            on_finished=self._job_finished,
            on_progress=self._job_progress,
            observer=self.observer,
            public_url=settings.public_url if webhooks_on else None,
        )
        self.jobs = JobService(
            store,
            runware,
            settings,
            wake_runner=self.runner.wake,
            hold_upload=self.runner.lease,
            on_budget_alert=lambda alert: self.dispatch("budget_alert", alert),
        )
        self.budgets = BudgetService(store, settings)
        self.moderation = ModerationService(store, settings)
        self.consent = ConsentService(store, statement=statement)
        self._run_jobs = run_jobs
        self.prune_check_s = PRUNE_CHECK_S
        self._runner_task: asyncio.Task[None] | None = None
        self._pruner_task: asyncio.Task[None] | None = None
        self._alerts_task: asyncio.Task[None] | None = None
        if self.web is not None and self.metrics is not None and webhooks_on:
            self.webhooks = WebhookReceiver(
                store,
                runware.read_webhook,
                wake=self._webhook_result_kept,
                output_ttl_s=settings.output_ttl_s,
            )
            add_runware_webhook(self.web.app, self.webhooks, record=self.metrics.webhook_call)
        self._notices_task: asyncio.Task[None] | None = None

    async def setup_hook(self) -> None:
        from cogs._i18n import CommandTranslator

        # Command names, descriptions and options in each member's Discord language (locales/).
        await self.tree.set_translator(CommandTranslator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        # Everything loaded so far lives as long as the process: keep it out of every future collection.
        gc.freeze()
        if not self._run_jobs:
            return
        if self.web is not None:
            await self.web.start()  # already listening when run_bot started it; in-process rigs start it here
        await self.sync_commands_if_changed()
        self._notices_task = asyncio.create_task(self._follow_notices(), name="job-notices")
        self._runner_task = asyncio.create_task(self.runner.run(), name="job-runner")
        self._runner_task.add_done_callback(self._runner_stopped)
        self._pruner_task = asyncio.create_task(self._prune_daily(), name="audit-pruner")
        self._alerts_task = asyncio.create_task(self._retry_budget_alerts(), name="budget-alerts")

    async def _follow_notices(self) -> None:
        """Act on the notifications of every process on the database: wake the runner when another
        process's change made work due (a job nobody holds queued, leases let go, a webhook result kept
        by whichever process Runware reached, or notices missed), and hand each notice to the cogs
        (`on_job_notice`: the acknowledgements this process holds)."""
        stream = self.store.subscribe()
        try:
            async for notice in stream:
                if notice.event in WAKING:
                    self.runner.wake()
                self.dispatch("job_notice", notice)
        finally:
            stream.close()

    async def _release_leases(self) -> None:
        """As the process stops (its runner stopped): end its leases now, so the other processes, woken
        by the notification that goes with it, take its jobs at once instead of when the leases run out."""
        try:
            released = await self.store.expire_leases([self.runner.owner], time.time())
        except StoreUnavailable as error:
            log.warning("leases not released at stop (%s); they run out by themselves", error)
            return
        except Exception:
            log.exception("leases not released at stop; they run out by themselves")
            return
        if released:
            log.info("released the leases of %s jobs for the other processes", released)

    async def _prune_daily(self) -> None:
        """Apply AUDIT_RETENTION_DAYS once a day, counted from the last pruning of any process: each process
        asks at start and then every PRUNE_CHECK_S, and the one that claims the day's duty prunes."""
        while True:
            try:
                now = time.time()
                if await self.store.claim_duty(DUTY_PRUNE, self.runner.owner, now, now + PRUNE_INTERVAL_S):
                    pruned = await self.moderation.prune()
                    if pruned is not None:
                        log.info("pruned moderation records older than the retention period: %s", pruned)
                    # Runware calls no more about a job whose output is gone: its webhook rows can go.
                    forgotten = await self.store.prune_webhooks(now - self.settings.output_ttl_s)
                    if forgotten:
                        log.info("pruned %s webhook rows of jobs that ended", forgotten)
            except Exception:
                log.exception("pruning old moderation records failed; will try again tomorrow")
            await asyncio.sleep(self.prune_check_s)

    async def _retry_budget_alerts(self) -> None:
        """Post again the budget alerts whose post failed: at start (before the gateway is ready, so the
        channel is fetched) and then every ALERT_RETRY_AFTER_S."""
        while True:
            try:
                for alert in await self.budgets.alerts_to_retry():
                    log.info("guild=%s posting budget alert %s%% again", alert.guild_id, alert.threshold)
                    self.dispatch("budget_alert", alert)
            except Exception:
                log.exception("the budget alert retry pass failed; will try again")
            await asyncio.sleep(ALERT_RETRY_AFTER_S)

    async def on_ready(self) -> None:
        """Tell the operator about servers the bot is in but does not serve (it stays; see the README)."""
        others = [g.id for g in self.guilds if not self.moderation.serves(g.id)]
        if others:
            log.warning(
                "in %s server(s) not in ALLOWED_GUILD_IDS, which are refused every command: %s",
                len(others),
                others[:20],
            )

    async def on_guild_join(self, guild: discord.Guild) -> None:
        """Warn the operator when someone adds the bot to a server it does not serve."""
        if not self.moderation.serves(guild.id):
            log.warning(
                "added to guild=%s (%s), which is not in ALLOWED_GUILD_IDS: its commands are refused. "
                "Remove the bot there, or turn off Public Bot in the Developer Portal",
                guild.id,
                guild.name,
            )

    def gateway_connected(self) -> bool:
        """/healthz: READY was received, the bot is not closing, and its gateway socket is open with a
        session (between a drop and the next READY or RESUMED it is not)."""
        ws = self.ws
        return (
            self.is_ready()
            and not self.is_closed()
            and ws is not None
            and ws.open
            and ws.session_id is not None
        )

    def runner_alive(self) -> bool:
        """/healthz: the job runner's task is running and its loop came round lately (JobRunner.is_alive)."""
        task = self._runner_task
        return task is not None and not task.done() and self.runner.is_alive(time.time())

    def _runner_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("the job runner stopped", exc_info=task.exception())

    def _webhook_result_kept(self, job_id: int) -> None:
        """A webhook result was kept for a job: have its runner apply it now. This process's runner is
        woken here at once; every process's runner (the one holding the job among them) is woken by the
        notification the keeping transaction sent (JobEvent.RESULT, in `_follow_notices`)."""
        self.runner.wake()

    def _job_finished(self, job: Job) -> None:
        self.dispatch("job_finished", job)

    def _job_progress(self, job_id: int, percent: int | None) -> None:
        self.dispatch("job_progress", job_id, percent)

    async def sync_commands_if_changed(self, *, force_global: bool = False) -> None:
        """Publish slash commands only when they changed (Discord allows 200 creates a day per guild).

        With DEV_GUILD_ID, commands go to that guild (instant); otherwise globally. Of several processes
        starting at once, the one that claims the duty syncs; the others leave it to it (`force_global`,
        the operator's `bot.py sync`, always syncs)."""
        guild = discord.Object(self.settings.dev_guild_id) if self.settings.dev_guild_id else None
        if guild is not None and not force_global:
            self.tree.copy_global_to(guild=guild)
        else:
            guild = None
        # The payload as sync sends it, localisations included: a changed translation is a change.
        translator = self.tree.translator
        commands = self.tree.get_commands(guild=guild)
        payload = [
            await c.get_translated_payload(self.tree, translator) if translator else c.to_dict(self.tree)
            for c in commands
        ]
        digest = hashlib.sha256(
            json.dumps([payload, guild.id if guild else None], sort_keys=True).encode()
        ).hexdigest()
        if force_global:
            await self._sync_commands(guild, digest)
            return
        if await self.store.get_state(_COMMANDS_HASH_KEY) == digest:
            log.info("slash commands unchanged; not syncing")
            return
        owner, now = self.runner.owner, time.time()
        if not await self.store.claim_duty(DUTY_SYNC, owner, now, now + SYNC_CLAIM_S):
            log.info("another process is syncing the slash commands; not syncing here")
            return
        try:
            # Checked again under the claim: another process may have synced them since.
            if await self.store.get_state(_COMMANDS_HASH_KEY) == digest:
                log.info("slash commands unchanged; not syncing")
                return
            await self._sync_commands(guild, digest)
        finally:
            await self.store.release_duty(DUTY_SYNC, owner)

    async def _sync_commands(self, guild: discord.Object | None, digest: str) -> None:
        synced = await self.tree.sync(guild=guild)
        await self.store.set_state(_COMMANDS_HASH_KEY, digest)
        log.info("synced %s slash commands %s", len(synced), f"to guild {guild.id}" if guild else "globally")

    async def close(self) -> None:
        if self.web is not None:
            await self.web.stop()
        if self._pruner_task is not None:
            self._pruner_task.cancel()
            await asyncio.wait({self._pruner_task}, timeout=RUNNER_STOP_TIMEOUT_S)
            self._pruner_task = None
        if self._alerts_task is not None:
            self._alerts_task.cancel()
            await asyncio.wait({self._alerts_task}, timeout=RUNNER_STOP_TIMEOUT_S)
            self._alerts_task = None
        if self._runner_task is not None:
            self._runner_task.cancel()
            # Bounded: a stop must never hang on the runner (state is in the database anyway).
            done, _ = await asyncio.wait({self._runner_task}, timeout=RUNNER_STOP_TIMEOUT_S)
            if not done:
                log.error("the job runner did not stop within %s s; leaving it", RUNNER_STOP_TIMEOUT_S)
            self._runner_task = None
            await self._release_leases()
        if self._notices_task is not None:
            self._notices_task.cancel()
            await asyncio.wait({self._notices_task}, timeout=RUNNER_STOP_TIMEOUT_S)
            self._notices_task = None
        await super().close()


class ShardedVideoBot(VideoBot, commands.AutoShardedBot):
    """VideoBot on one gateway connection per shard: the shards of SHARD_IDS (all when it is empty) of
    SHARD_COUNT. Discord sends a guild's events and interactions to shard (guild_id >> 22) % SHARD_COUNT,
    so this process serves the guilds of its shards."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Shards of this process without a live session: from their disconnect until their next READY or
        # RESUMED (discord.py's shard events). A shard's new socket is open before its READY, so the
        # socket alone would call a shard that is still identifying connected.
        self._shards_down: set[int] = set()

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self._shards_down.add(shard_id)

    async def on_shard_ready(self, shard_id: int) -> None:
        self._shards_down.discard(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self._shards_down.discard(shard_id)

    def gateway_connected(self) -> bool:
        """/healthz: READY received, and every shard of this process connected with a session."""
        wanted = len(self.shard_ids) if self.shard_ids is not None else self.shard_count
        shards = self.shards.values()
        return (
            self.is_ready()
            and not self.is_closed()
            and len(shards) == wanted
            and not self._shards_down
            and all(not shard.is_closed() for shard in shards)
        )


def make_bot(*, settings: Settings, store: Store, runware: RunwareClient, **options: Any) -> VideoBot:
    """The bot for these settings: one connection (discord.py's default) without SHARD_COUNT, else the
    shards this process serves."""
    if settings.shard_count is None:
        return VideoBot(settings=settings, store=store, runware=runware, **options)
    return ShardedVideoBot(
        settings=settings,
        store=store,
        runware=runware,
        shard_count=settings.shard_count,
        shard_ids=settings.shard_ids or None,
        **options,
    )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (not on Windows): its faster I/O cut the p99 acknowledgement time
    of 200 simultaneous /animate by about a tenth (bench/ack_latency.py)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def tune_garbage_collector() -> None:
    """Collect the youngest generation every 50,000 allocations instead of 700.

    A burst of interactions allocates heavily; with the default, full collections of the whole heap
    (tens of ms) landed inside bursts and delayed acknowledgements. Memory grows by a few MB at most."""
    gc.set_threshold(50_000, 50, 100)


# glibc's mallopt() parameter for the size from which a block gets a memory mapping of its own.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024


def limit_heap_fragmentation() -> bool:
    """Give blocks of 64 KiB and more (downloaded files, decoded images, request bodies) a memory mapping
    of their own, handed back to the system when freed. glibc's default threshold (128 KiB) rises each
    time such a block is freed, until these blocks come from the heap, where the small long-lived objects
    allocated between them keep the freed space from being returned: with 1,000 jobs in flight the process
    held 206 MB instead of 106 (bench/memory_inflight.py). Nothing is done where the C library is not
    glibc, or where the operator set MALLOC_MMAP_THRESHOLD_ (glibc read it at start). True when set here."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def load_settings() -> Settings | None:
    """Settings from the environment and .env, or None after printing what is wrong."""
    try:
        return Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        print("Ventriloquist cannot start:\n" + describe_settings_error(error), file=sys.stderr)
        return None


async def run_bot(settings: Settings) -> None:
    """Start the bot and keep it running until SIGTERM/SIGINT or a fatal error."""
    point_discord_at(settings)
    async with open_store(settings.database_url) as store, aiohttp.ClientSession() as http:
        runware = RunwareClient.from_settings(http, settings)
        async with make_bot(settings=settings, store=store, runware=runware) as bot:
            if bot.web is not None:
                await bot.web.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value()))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                log.info("stopping")
            stopper.cancel()
            await bot.close()
            if runner in done:
                runner.result()  # re-raise a fatal error (bad token, …)
            else:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner


async def run_checks(settings: Settings) -> bool:
    """`python bot.py check`: one line per check; True when all pass."""
    point_discord_at(settings)
    ok = True

    def report(name: str, error: str | None) -> None:
        nonlocal ok
        ok = ok and error is None
        print(f"{'OK  ' if error is None else 'FAIL'} {name}{'' if error is None else ': ' + error}")

    report("settings", None)
    try:
        async with open_store(settings.database_url) as _store:
            pass
        report(f"database ({settings.database_url.split('://')[0]})", None)
    except (NewerDatabaseError, OSError, ValueError, RuntimeError) as error:
        report("database", str(error))
    except Exception as error:
        report("database", f"{type(error).__name__}: {error}")
    async with aiohttp.ClientSession() as http:
        try:
            await RunwareClient.from_settings(http, settings).check_auth()
            report("Runware API key", None)
        except RunwareError as error:
            if error.kind in (ErrorKind.AUTH, ErrorKind.PERMISSION):
                reason = "Runware rejected RUNWARE_API_KEY; create one at https://my.runware.ai/keys"
            else:
                reason = f"{error.kind.value}: {error.message}"
            report("Runware API key", reason)
    report(*http_server_check(settings))
    report(*public_url_check(settings))
    client = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        user = await client.static_login(settings.discord_token.get_secret_value())
        report(f"Discord token (bot {user['username']})", None)
    except discord.LoginFailure:
        report("Discord token", "Discord rejected DISCORD_TOKEN (401); copy it again from the Bot page")
    except (discord.HTTPException, aiohttp.ClientError, OSError) as error:
        report("Discord token", f"could not reach Discord: {type(error).__name__}")
    finally:
        await client.close()
    return ok


def http_server_check(settings: Settings) -> tuple[str, str | None]:
    """`check`: the HTTP server's address is free to listen on (a bind test), or the server is off."""
    host, port = settings.http_host, settings.http_port
    if port is None:
        return "HTTP server off (HTTP_PORT unset)", None
    if port == 0:
        return f"HTTP server ({host}, a free port chosen at start)", None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # As aiohttp binds: an address a stopped process left in TIME_WAIT is free to take.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        advice = "choose another HTTP_PORT or HTTP_HOST"
        return "HTTP server", f"cannot listen on {host}:{port} ({reason}); {advice}"
    return f"HTTP server ({host}:{port} is free)", None


def public_url_check(settings: Settings) -> tuple[str, str | None]:
    """`check`: PUBLIC_URL (well-formed once the settings loaded) needs the server it points at."""
    if settings.public_url is None:
        return "PUBLIC_URL unset (no webhooks: results are polled)", None
    if settings.http_port is None:
        return "PUBLIC_URL", "set, but HTTP_PORT is not: no server would receive what is sent to it"
    url = urlsplit(settings.public_url)
    shown = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "")  # no user:password
    return f"PUBLIC_URL ({shown})", None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the verb, load settings once, run it. Returns the process exit code."""
    parser = argparse.ArgumentParser(prog="bot.py", description="Ventriloquist Discord bot")
    parser.add_argument("verb", nargs="?", default="run", choices=("run", "check", "sync", "migrate-db"))
    parser.add_argument("--to", metavar="URL", help="migrate-db: the empty PostgreSQL database to copy into")
    args = parser.parse_args(argv)
    if (args.verb == "migrate-db") != (args.to is not None):
        parser.error("migrate-db needs --to postgresql://…, and --to goes with migrate-db only")
    settings = load_settings()
    if settings is None:
        return 2
    secrets = [settings.discord_token.get_secret_value(), settings.runware_api_key.get_secret_value()]
    # `check` prints its own one-line verdicts; routine INFO lines would only bury them.
    quiet = args.verb in ("check", "migrate-db") and settings.log_level != "DEBUG"
    setup_logging("ERROR" if quiet else settings.log_level, secrets)
    if args.verb == "check":
        return 0 if asyncio.run(run_checks(settings)) else 1
    if args.verb == "sync":
        return asyncio.run(_sync_globally(settings))
    if args.verb == "migrate-db":
        return asyncio.run(_migrate_db(settings.database_url, args.to))
    tune_garbage_collector()
    limit_heap_fragmentation()
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(run_bot(settings))
    except discord.LoginFailure:
        log.error(
            "Discord rejected DISCORD_TOKEN. Copy the token again from the Bot page of your application."
        )
        return 1
    except (NewerDatabaseError, HttpServerError) as error:
        log.error("%s", error)
        return 1
    except aiohttp.ClientConnectionError as error:
        # Logging in to Discord is not retried (the gateway reconnects by itself once logged in).
        log.error(
            "could not reach Discord to log in (%s); check the network and start again", type(error).__name__
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _migrate_db(source_url: str, target_url: str) -> int:
    """`python bot.py migrate-db --to URL`: the work is in storage/migrate.py; this prints its verdict."""
    from storage.migrate import MigrationError, migrate_sqlite_to_postgres

    try:
        summary = await migrate_sqlite_to_postgres(source_url, target_url)
    except MigrationError as error:
        print(f"migrate-db: {error}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


async def _sync_globally(settings: Settings) -> int:
    point_discord_at(settings)
    async with open_store(settings.database_url) as store, aiohttp.ClientSession() as http:
        runware = RunwareClient.from_settings(http, settings)
        bot = VideoBot(settings=settings, store=store, runware=runware, run_jobs=False)
        async with bot:
            await bot.login(settings.discord_token.get_secret_value())  # runs setup_hook
            await bot.sync_commands_if_changed(force_global=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
