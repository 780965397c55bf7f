"""/animate: take a portrait and a voice clip, ask for consent or a cost confirmation when needed, and queue
the job. Its result is posted by cogs/delivery.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from cogs._i18n import ENGLISH, N_, member_words
from cogs._ui import ack_text, admit, answer, is_age_restricted, member_role_ids, send
from cogs._wording import NOT_YOUR_MESSAGE, missing_files_text
from cogs.consent import ConsentButton, consent_text, consent_view
from cogs.delivery import acknowledgement_text, track_acknowledgement
from cogs.quotes import QuoteButton, quote_text, quote_view
from cogs.videos import ack_view
from core.consent import HeldFiles
from core.errors import CONNECTION_ERRORS, UserFacingError
from core.jobs import AnimateRequest, Quoted
from core.models import Submission

if TYPE_CHECKING:
    from bot import VideoBot

log = logging.getLogger(__name__)

DEFAULT_QUALITY = 85
QUOTE_EXPIRED = N_("This quote expired. Nothing was charged; run /animate again if you want the video.")
CONSENT_EXPIRED = N_(
    "This request expired. Nothing was sent or charged; run /animate again when you're ready."
)
FORMATS = [app_commands.Choice(name=f, value=f) for f in ("MP4", "WEBM", "MOV")]


class VideoCog(commands.Cog):
    """The /animate command, up to the job's acknowledgement (or its consent statement or quote)."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self._expiries: set[asyncio.Task[None]] = set()
        # A message command can't be declared in a cog's body (discord.py); it is added to the tree here.
        self.animate_menu = app_commands.ContextMenu(name=N_("Animate"), callback=self.animate_message)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.animate_menu)

    @app_commands.command(
        name=N_("animate"), description=N_("Animate a portrait so it speaks your audio clip.")
    )
    @app_commands.guild_only()
    @app_commands.rename(image=N_("image"), audio=N_("audio"), format=N_("format"), quality=N_("quality"))
    @app_commands.describe(
        image=N_("The portrait: PNG, JPEG or WEBP, 300–6000 px per side"),
        audio=N_("The voice: MP3, WAV, FLAC or OGG, a short clip (30 s at most)"),
        format=N_("Video format (default MP4)"),
        quality=N_("Higher looks better but makes a bigger file (20–99, default 85)"),
    )
    @app_commands.choices(format=FORMATS)
    async def animate(
        self,
        interaction: discord.Interaction[VideoBot],
        image: discord.Attachment,
        audio: discord.Attachment,
        format: app_commands.Choice[str] | None = None,
        quality: app_commands.Range[int, 20, 99] | None = None,
    ) -> None:
        """/animate: a portrait and a voice clip from the command's options."""
        # Acknowledge first: Discord gives 3 s, downloads and uploads take longer. Private, so that
        # rejections and costs are only seen by the member; the video itself is posted publicly.
        await interaction.response.defer(ephemeral=True, thinking=True)
        # From the interaction's creation (its snowflake, Discord's clock) to here: what the member waited.
        self.bot.observer.acknowledged(time.time() - interaction.created_at.timestamp())
        await self.start(
            interaction, image, audio, format.value if format else "MP4", quality or DEFAULT_QUALITY
        )

    @app_commands.guild_only()
    async def animate_message(
        self, interaction: discord.Interaction[VideoBot], message: discord.Message
    ) -> None:
        """The "Animate" message command: the portrait and voice clip of one's own message, through the
        same path as /animate (default format and quality)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        # From the interaction's creation (its snowflake, Discord's clock) to here: what the member waited.
        self.bot.observer.acknowledged(time.time() - interaction.created_at.timestamp())
        if message.author.id != interaction.user.id:
            # Someone else's face and voice: exactly what the consent statement forbids.
            raise UserFacingError(NOT_YOUR_MESSAGE)
        image, audio = message_files(message)
        if image is None or audio is None:
            replied = await self._fetch_replied(message)
            if replied is not None:
                image, audio = message_files(message, replied)
        if image is None or audio is None:
            raise UserFacingError(missing_files_text(ENGLISH, image is None, audio is None))
        await self.start(interaction, image, audio, "MP4", DEFAULT_QUALITY)

    async def _fetch_replied(self, message: discord.Message) -> discord.Message | None:
        """The message a reply replies to, read from Discord (one request) when the interaction did not
        bring it: Discord may leave a reply's ``referenced_message`` out of a message command's resolved
        message. None when it is not a reply, was brought, or can't be read: deleted (404), or in a channel
        whose history the bot may not read (403); any other failure is logged too."""
        reference = message.reference
        if (
            reference is None
            or reference.message_id is None
            or reference.type is not discord.MessageReferenceType.reply
            or isinstance(reference.resolved, discord.Message)
        ):
            return None
        channel = self.bot.get_partial_messageable(reference.channel_id, guild_id=reference.guild_id)
        try:
            return await channel.fetch_message(reference.message_id)
        except (discord.NotFound, discord.Forbidden) as error:
            log.info(
                "replied-to message %s in channel %s not readable (%s, code %s)",
                reference.message_id,
                reference.channel_id,
                error.status,
                error.code,
            )
        except discord.HTTPException as error:
            log.warning(
                "replied-to message %s in channel %s not fetched: HTTP %s, code %s",
                reference.message_id,
                reference.channel_id,
                error.status,
                error.code,
            )
        except CONNECTION_ERRORS as error:
            log.warning(
                "replied-to message %s in channel %s not fetched: %s",
                reference.message_id,
                reference.channel_id,
                type(error).__name__,
            )
        return None

    async def start(
        self,
        interaction: discord.Interaction[VideoBot],
        image: discord.Attachment,
        audio: discord.Attachment,
        output_format: str,
        quality: int,
    ) -> None:
        """A deferred command's portrait and voice clip, up to the acknowledgement: the server, ban and
        channel checks, the limits, the download, consent, then the quote or the job."""
        channel = interaction.channel
        submission = Submission(
            guild_id=interaction.guild_id or 0,
            channel_id=interaction.channel_id or 0,
            user_id=interaction.user.id,
            role_ids=member_role_ids(interaction),
            output_format=output_format,
            output_quality=quality,
            upload_limit_bytes=interaction.filesize_limit,
            channel_nsfw=is_age_restricted(channel),
        )
        guild = await admit(interaction)
        jobs = self.bot.jobs
        jobs.check_declared_sizes(image.size, audio.size)
        # Cheap checks before costly work: a member who could not start a video now downloads nothing.
        await jobs.precheck(submission.guild_id, submission.user_id, submission.role_ids)
        async with jobs.heavy_work.hold(waiting_notice(interaction)):
            files = HeldFiles(await _download(image, "image"), await _download(audio, "audio"))
        if await self.bot.consent.needed(guild, submission.user_id):
            await self._ask_consent(interaction, submission, files)
            return
        await self.go_ahead(interaction, submission, files)

    async def _ask_consent(
        self, interaction: discord.Interaction[VideoBot], submission: Submission, files: HeldFiles
    ) -> None:
        """Show the consent statement; the submission waits (its files in memory) for I accept."""
        consent = self.bot.consent
        request = await consent.ask(submission, files)
        # Scheduled first: the held files are freed at the expiry even if the statement can't be shown.
        self._close_later(interaction, request.expires_at, consent.expire, request.id, CONSENT_EXPIRED)
        _ = member_words(interaction)
        await send(
            interaction,
            consent_text(_, consent.statement, request.expires_at),
            view=consent_view(_, request.id),
        )

    async def go_ahead(
        self, interaction: discord.Interaction[VideoBot], submission: Submission, files: HeldFiles
    ) -> None:
        """Check the files, then reserve and queue the job (or quote its cost). Answers in the interaction's
        own message: the command's reply, or the consent statement that was accepted."""
        if interaction.type is discord.InteractionType.component:
            await admit(interaction)  # things may have changed while they read the statement
        request = AnimateRequest.of(submission, files.image, files.audio)
        outcome = await self.bot.jobs.accept(request, on_wait=waiting_notice(interaction))
        if isinstance(outcome, Quoted):
            await self._show_quote(interaction, outcome)
            return
        accepted = outcome
        _ = member_words(interaction)
        head, text, stands = await acknowledgement_text(
            self.bot, accepted.job, ack_text(_, accepted.job, accepted.usage), interaction
        )
        try:
            await answer(interaction, text, view=ack_view(_, accepted.job))
        except discord.HTTPException as error:
            # The job runs and its result is posted anyway: never answer "try again" to a charged job.
            log.warning("job=%s acknowledgement not sent: %r", accepted.job.id, error)
            return
        # Registered only after the acknowledgement exists, so a progress edit cannot race it.
        await track_acknowledgement(self.bot, accepted.job.id, interaction, head, text, stands)

    async def _show_quote(self, interaction: discord.Interaction[VideoBot], quoted: Quoted) -> None:
        """Ask the member to confirm a costly job; close the quote when nobody did in time."""
        quote = quoted.quote
        _ = member_words(interaction)
        await answer(interaction, quote_text(_, quote, quoted.usage), view=quote_view(_, quote.id))
        self._close_later(interaction, quote.expires_at, self.bot.jobs.expire, quote.id, QUOTE_EXPIRED)

    def _close_later(
        self,
        interaction: discord.Interaction[VideoBot],
        at: float,
        expire: Callable[[int], Awaitable[bool]],
        item_id: int,
        text: str,
    ) -> None:
        """At `at`, expire a quote or consent request nobody answered, and say so in its message.
        (After a restart nobody does: a late click finds it expired in the database.)"""

        async def close() -> None:
            await asyncio.sleep(max(0.0, at - time.time()))
            if await expire(item_id):
                with contextlib.suppress(discord.HTTPException, RuntimeError):
                    content = member_words(interaction)(text)
                    await interaction.edit_original_response(content=content, view=None)

        task = asyncio.create_task(close())
        self._expiries.add(task)
        task.add_done_callback(self._expiries.discard)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.animate_menu.name, type=self.animate_menu.type)
        for task in self._expiries:
            task.cancel()


WAITING = N_("⏳ Waiting for a free slot: the bot is busy with other videos. Your request is in line.")


def waiting_notice(interaction: discord.Interaction[VideoBot]) -> Callable[[], Awaitable[None]]:
    """What to do when a request waits for a download or decode slot: say so in its message."""

    async def notice() -> None:
        with contextlib.suppress(discord.HTTPException):
            await interaction.edit_original_response(content=member_words(interaction)(WAITING))

    return notice


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus")
# The types the checks accept (core/media.py), as Discord labels them.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
AUDIO_TYPES = (
    *("audio/mpeg", "audio/mp3", "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"),
    *("audio/flac", "audio/x-flac", "audio/ogg", "audio/opus"),
)


def _kind(attachment: discord.Attachment) -> str:
    return (attachment.content_type or "").split(";")[0].strip().lower()


def _is_image(attachment: discord.Attachment) -> bool:
    return _kind(attachment).startswith("image/") or attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def _is_usable_image(attachment: discord.Attachment) -> bool:
    return _kind(attachment) in IMAGE_TYPES or attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def _is_audio(attachment: discord.Attachment) -> bool:
    return (
        _kind(attachment).startswith("audio/")
        or attachment.is_voice_message()
        or attachment.filename.lower().endswith(AUDIO_EXTENSIONS)
    )


def _is_usable_audio(attachment: discord.Attachment) -> bool:
    return (
        _kind(attachment) in AUDIO_TYPES
        or attachment.is_voice_message()
        or attachment.filename.lower().endswith(AUDIO_EXTENSIONS)
    )


def _first(
    attachments: list[discord.Attachment],
    kind: Callable[[discord.Attachment], bool],
    usable: Callable[[discord.Attachment], bool],
    other: discord.Attachment | None = None,
) -> discord.Attachment | None:
    """The first attachment of a kind the checks accept, else the first of that kind at all (whose check
    then says what is wrong with it): a GIF listed before the portrait must not hide it."""
    found = [a for a in attachments if kind(a) and a is not other]
    return next((a for a in found if usable(a)), found[0] if found else None)


def message_files(
    message: discord.Message, replied: discord.Message | None = None
) -> tuple[discord.Attachment | None, discord.Attachment | None]:
    """The portrait and the voice clip of a message: its first usable image and audio file (a voice
    message's recording counts). Discord sends a voice message alone, so one that replies to the
    member's own message with the photo takes the photo from there (and the other way round): the replied
    message is ``replied`` (fetched) or the one the interaction brought."""
    image = _first(message.attachments, _is_image, _is_usable_image)
    audio = _first(message.attachments, _is_audio, _is_usable_audio, image)
    if replied is None and message.reference is not None:
        resolved = message.reference.resolved
        replied = resolved if isinstance(resolved, discord.Message) else None
    if replied is not None and replied.author.id == message.author.id:
        image = image or _first(replied.attachments, _is_image, _is_usable_image)
        audio = audio or _first(replied.attachments, _is_audio, _is_usable_audio)
    return image, audio


async def _download(attachment: discord.Attachment, what: str) -> bytes:
    """Read an attachment now: its signed URL expires (and is never stored), and Runware must never be
    given it."""
    try:
        return await attachment.read()
    except discord.NotFound as error:
        if what == "image":
            raise UserFacingError(
                "Discord no longer has the image file (its link expired). Please run the command again."
            ) from error
        raise UserFacingError(
            "Discord no longer has the audio file (its link expired). Please run the command again."
        ) from error
    except discord.HTTPException as error:
        if what == "image":
            raise UserFacingError("I couldn't download the image from Discord. Please try again.") from error
        raise UserFacingError("I couldn't download the audio from Discord. Please try again.") from error


async def setup(bot: VideoBot) -> None:
    """Extension entry point."""
    await bot.add_cog(VideoCog(bot))
    # Quote and consent buttons answer whichever process receives the click, also after a restart.
    bot.add_dynamic_items(QuoteButton, ConsentButton)
