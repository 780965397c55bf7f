"""/animate end to end: real discord.py and VideoBot against the fake Discord and fake Runware."""

from __future__ import annotations

from tests import media_factory as media
from tests.e2e.conftest import App
from tests.fakes.runware import Outcome, make_mp4


async def test_happy_path_posts_the_exact_video_with_a_mention(app: App) -> None:
    """The video Runware made is attached, byte for byte, to a channel post that mentions the member."""
    video = make_mp4(50_000)
    app.runware.next_outcome(Outcome.success(cost_usd=0.27, video=video))
    payload = await app.animate(audio=media.wav(3.0))
    ack = await app.reply_to(payload, "accepted")
    assert ack.ephemeral
    assert "Job #1" in ack.content and "$0.30" in ack.content and "$0.70" in ack.content
    post = await app.post_in_channel("ready")
    user_id = int(payload["member"]["user"]["id"])
    assert f"<@{user_id}>" in post.content and "AI-generated" in post.content
    assert "$" not in post.content  # what a member spends is not posted publicly
    assert [a.data for a in post.attachments] == [video]
    assert post.allowed_mentions is not None and [int(u) for u in post.allowed_mentions["users"]] == [user_id]
    await app.delivered(1)
    assert app.query("SELECT status, cost_micros, delivered_at IS NOT NULL FROM jobs") == [
        ("succeeded", 270_000, 1)
    ]
    assert app.spent() == 270_000


async def assert_rejected(app: App, payload: dict[str, object], *phrases: str) -> None:
    """The member got a private reply with these phrases, and nothing was submitted or charged."""
    reply = await app.reply_to(payload, phrases[0])
    assert reply.ephemeral
    for phrase in phrases[1:]:
        assert phrase in reply.content
    assert app.runware.requests == []
    assert app.query("SELECT COUNT(*) FROM jobs") == [(0,)]
    assert app.query("SELECT COUNT(*) FROM ledger") == [(0,)]


async def test_text_file_named_png_is_refused(app: App) -> None:
    """A text file called face.png is refused by its bytes, naming the accepted formats."""
    payload = await app.animate(image=b"hello, I am not a picture\n", image_name="face.png")
    await assert_rejected(app, payload, "isn't a PNG, JPEG or WEBP")


async def test_tiny_image_is_refused(app: App) -> None:
    """A 10×10 PNG is refused with its size and the accepted range."""
    payload = await app.animate(image=media.png(10, 10))
    await assert_rejected(app, payload, "10×10", "300 and 6000")


async def test_too_long_audio_is_refused(app: App) -> None:
    """A 31 s clip is refused with its length and the limit."""
    payload = await app.animate(audio=media.wav(31.0))
    await assert_rejected(app, payload, "31.0 s", "30 s")


async def test_mp3_with_a_lying_header_is_refused(app: App) -> None:
    """An MP3 whose header claims 5 s but holds 31 s of audio is measured and refused."""
    payload = await app.animate(audio=media.mp3_with_lying_header(31.0, 5.0), audio_name="short.mp3")
    await assert_rejected(app, payload, "31.0 s")


async def test_quota_refusal_submits_nothing(app: App) -> None:
    """Over the daily limit: the refusal names the numbers and the reset time; nothing is submitted."""
    first = await app.animate(audio=media.wav(8.0))  # $0.80 of $1.00
    await app.reply_to(first, "accepted")
    await app.discord.wait_for(lambda: len(app.runware.tasks_of_type("videoInference")) == 1)
    uploads = len(app.runware.tasks_of_type("mediaStorage"))
    second = await app.animate(audio=media.wav(3.0))
    reply = await app.reply_to(second, "daily limit")
    assert "$0.30" in reply.content and "$0.20 left" in reply.content and "<t:" in reply.content
    assert len(app.runware.tasks_of_type("videoInference")) == 1
    assert len(app.runware.tasks_of_type("mediaStorage")) == uploads
    assert app.query("SELECT COUNT(*) FROM jobs") == [(1,)]


async def test_task_failure_is_posted_and_refunded(app: App) -> None:
    """A failed task is posted in the channel in plain words with 'you were not charged'."""
    app.runware.next_outcome(Outcome.failure("timeoutProvider", shape="nested"))
    await app.animate()
    post = await app.post_in_channel("failed")
    assert "not charged" in post.content and post.attachments == []
    await app.delivered(1)
    assert app.spent() == 0


async def test_rate_limits_and_errors_while_polling_are_survived(app: App) -> None:
    """429 and 500 answers to getResponse delay the job; the video still arrives, charged once."""
    app.runware.inject(429, times=3, task_type="getResponse")
    app.runware.inject(500, times=3, task_type="getResponse")
    app.runware.next_outcome(Outcome.success(cost_usd=0.31))
    await app.animate()
    post = await app.post_in_channel("ready", timeout=30)
    assert len(post.attachments) == 1
    await app.delivered(1)
    assert app.spent() == 310_000


async def test_video_over_the_upload_limit_is_posted_as_a_link(app: App) -> None:
    """A video larger than the guild's 10 MiB limit is linked, with the time the link stops working."""
    app.runware.next_outcome(Outcome.success(video=make_mp4(11 * 1024 * 1024)))
    await app.animate()
    post = await app.post_in_channel("link")
    assert post.attachments == []
    assert "/videos/" in post.content and "10 MB" in post.content and "<t:" in post.content


async def test_result_arrives_after_the_interaction_token_expired(app: App) -> None:
    """The result is posted with the bot token even when the 15-minute interaction token is dead."""
    app.runware.polls_to_finish = 4
    payload = await app.animate()
    await app.reply_to(payload, "accepted")
    app.discord.expire_interaction_token(str(payload["token"]))
    post = await app.post_in_channel("ready")
    assert len(post.attachments) == 1
    await app.delivered(1)


async def test_flagged_video_is_withheld_in_a_normal_channel(app: App) -> None:
    """An NSFW-flagged result is not posted in a normal channel; the member is told privately, not charged."""
    app.runware.next_outcome(Outcome.success(nsfw=True))
    payload = await app.animate()
    reply = await app.reply_to(payload, "flagged as adult content")
    assert reply.ephemeral and "age-restricted" in reply.content and "not charged" in reply.content
    await app.delivered(1)
    assert app.channel_posts() == []
    assert app.spent() == 0
    assert app.query("SELECT kind, amount_micros FROM ledger WHERE kind IN ('settle', 'grant')") == [
        ("settle", 420_000),
        ("grant", -420_000),
    ]


async def test_flagged_video_after_the_token_expired_is_explained_in_the_channel(app: App) -> None:
    """With the private reply out of reach, the channel gets a short notice, never the video."""
    app.runware.next_outcome(Outcome.success(nsfw=True))
    app.runware.polls_to_finish = 4
    payload = await app.animate()
    await app.reply_to(payload, "accepted")
    await app.bot.get_cog("DeliveryCog").acks.close()  # as after a restart: it holds no interaction
    post = await app.post_in_channel("couldn't be posted in this channel")
    assert post.attachments == [] and "/videos/" not in post.content and "not charged" in post.content
    await app.delivered(1)
    assert app.spent() == 0


async def test_flagged_video_is_posted_in_an_age_restricted_channel(app: App) -> None:
    """In an age-restricted channel the flagged video is posted."""
    from tests.fakes.discord_fixtures import NSFW_CHANNEL_ID

    app.runware.next_outcome(Outcome.success(nsfw=True))
    await app.animate(channel_id=NSFW_CHANNEL_ID)
    post = await app.post_in_channel("ready", channel_id=NSFW_CHANNEL_ID)
    assert len(post.attachments) == 1


async def test_acknowledgement_is_updated_with_a_link_to_the_result(app: App) -> None:
    """While the token lives, the private acknowledgement is edited to point at the posted video."""
    payload = await app.animate()
    post = await app.post_in_channel("ready")
    updated = await app.reply_to(payload, "is ready")
    assert str(post.id) in updated.content and updated.ephemeral
    assert "It cost $0.42 (estimate $0.30)" in updated.content


async def test_usage_shows_spend_limit_and_active_jobs(app: App) -> None:
    """/usage answers privately with dollars: spent, the limit, what is left, jobs in progress."""
    app.runware.polls_to_finish = 10_000
    first = await app.animate(audio=media.wav(6.0))
    await app.reply_to(first, "accepted")
    payload = app.discord.make_slash_interaction("usage")
    await app.discord.send_interaction(payload)
    reply = await app.reply_to(payload, "usage")
    assert reply.ephemeral
    assert "$0.60 of $1.00" in reply.content and "$0.40" in reply.content
    assert "1 video in progress, at most 2 at once" in reply.content and "<t:" in reply.content


async def test_format_and_quality_options_reach_runware(app: App) -> None:
    """The format and quality a member picks are what Runware is asked for."""
    payload = await app.animate(options=[("format", 3, "WEBM"), ("quality", 4, 60)])
    await app.reply_to(payload, "accepted")
    await app.discord.wait_for(lambda: bool(app.runware.tasks_of_type("videoInference")))
    task = app.runware.tasks_of_type("videoInference")[0]
    assert (task["outputFormat"], task["outputQuality"]) == ("WEBM", 60)
    post = await app.post_in_channel("ready")
    assert post.attachments[0].filename.endswith(".webm")


async def test_without_permission_to_post_the_result_comes_through_the_interaction(app: App) -> None:
    """If the bot may not post in the channel, the result is sent as a public followup instead."""
    from tests.fakes.discord_fixtures import CHANNEL_ID

    app.discord.inject_status(f"POST /channels/{CHANNEL_ID}/messages", 403, 50013, times=10)
    payload = await app.animate()
    post = await app.discord.wait_for_message(
        lambda m: m.via == "followup" and "ready" in m.content and not m.ephemeral, timeout=15
    )
    assert post.interaction_id == int(payload["id"]) and len(post.attachments) == 1
    await app.delivered(1)


async def test_acknowledgement_shows_rendering_progress(app: App) -> None:
    """While Runware renders, the private acknowledgement says so, with its progress."""
    app.runware.polls_to_finish = 10_000
    payload = await app.animate()
    update = await app.reply_to(payload, "Being made by the video service:")
    assert update.ephemeral and "Job #1 accepted" in update.content and "% done" in update.content


async def test_declared_oversize_attachment_is_refused_before_download(app: App) -> None:
    """An attachment whose size is over the limit is refused without downloading it."""
    big = app.discord.add_attachment("big.png", b"\x89PNG" + bytes(11 * 1024 * 1024))
    audio = app.discord.add_attachment("voice.wav", media.wav(2.0))
    payload = app.discord.make_slash_interaction("animate", [("image", 11, big), ("audio", 11, audio)])
    await app.discord.send_interaction(payload)
    await assert_rejected(app, payload, "The limit is 10")
    assert app.discord.downloads(big["id"]) == 0


async def test_voice_message_ogg_is_accepted(app: App) -> None:
    """An OGG Opus clip (a saved Discord voice message) is converted and animated."""
    payload = await app.animate(audio=media.ogg_opus(2.0), audio_name="voice-message.ogg")
    await app.reply_to(payload, "accepted")
    post = await app.post_in_channel("ready")
    assert len(post.attachments) == 1
    flac = [u for u in app.runware.uploads.values() if (u.mime or "").startswith("audio/")]
    assert flac and flac[0].data[:4] == b"fLaC"


async def test_flagged_video_too_big_to_attach_is_a_spoilered_link(app: App) -> None:
    """In an age-restricted channel, a flagged video over the upload limit is posted as a link hidden
    behind a spoiler (which hides its preview too), and logged as spoilered."""
    from tests.fakes.discord_fixtures import NSFW_CHANNEL_ID

    big = b"\x00" * (11 * 1024 * 1024)
    app.runware.next_outcome(Outcome.success(nsfw=True, video=big))
    await app.animate(channel_id=NSFW_CHANNEL_ID)
    post = await app.post_in_channel("Too big to attach", channel_id=NSFW_CHANNEL_ID)
    (url,) = [w for w in post.content.split() if "/videos/" in w]
    assert url.startswith("||http") and url.endswith("||") and post.attachments == []
