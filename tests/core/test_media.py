"""Validation of /animate's image and audio attachments, on real files made in memory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable

import mutagen.mp3
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.errors import InvalidMedia
from core.media import ACCEPTED_AUDIO, ACCEPTED_IMAGES, validate_audio, validate_image
from tests import media_factory as make

MB = 1024 * 1024
IMAGE_LIMIT = 10 * MB
AUDIO_LIMIT = 10 * MB
DAMAGED_IMAGE = "That image file is damaged or incomplete."


def check_image(data: bytes, *, max_bytes: int = IMAGE_LIMIT):
    return validate_image(data, max_bytes=max_bytes)


def check_audio(data: bytes, *, max_bytes: int = AUDIO_LIMIT, max_seconds: float = 30.0):
    return validate_audio(data, max_bytes=max_bytes, max_seconds=max_seconds)


def rejection(call, *args, **kwargs) -> str:
    """The member-facing message of the InvalidMedia that `call` raises."""
    with pytest.raises(InvalidMedia) as caught:
        call(*args, **kwargs)
    return caught.value.message


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def wav_with(data: bytes, **fields: int) -> bytes:
    """A stdlib-written WAV (fmt at 12, data at 36) with some header fields overwritten."""
    out = bytearray(data)
    offsets = {
        "format_tag": (20, "<H"),
        "channels": (22, "<H"),
        "sample_rate": (24, "<I"),
        "byte_rate": (28, "<I"),
        "block_align": (32, "<H"),
        "bits": (34, "<H"),
        "data_size": (40, "<I"),
    }
    for name, value in fields.items():
        offset, fmt = offsets[name]
        struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def flac_with_total_samples(data: bytes, total_samples: int) -> bytes:
    """A FLAC whose STREAMINFO claims `total_samples` (the low 36 bits of bytes 18..25 of the file)."""
    out = bytearray(data)
    (packed,) = struct.unpack_from(">Q", out, 18)
    struct.pack_into(">Q", out, 18, (packed & ~0xF_FFFF_FFFF) | total_samples)
    return bytes(out)


# ------------------------------------------------------------------------------------------------ images


def test_png_accepted() -> None:
    """A 400×500 PNG is accepted with its MIME type and size."""
    image = check_image(make.png(400, 500))
    assert (image.mime, image.width, image.height) == ("image/png", 400, 500)


def test_jpeg_accepted() -> None:
    """A JPEG is accepted as image/jpeg."""
    image = check_image(make.jpeg(640, 480))
    assert (image.mime, image.width, image.height) == ("image/jpeg", 640, 480)


def test_lossy_webp_accepted() -> None:
    """A lossy (VP8) WEBP is accepted as image/webp."""
    image = check_image(make.webp(300, 6000))
    assert (image.mime, image.width, image.height) == ("image/webp", 300, 6000)


def test_lossless_webp_accepted() -> None:
    """A lossless (VP8L) WEBP is accepted with its size read from the header."""
    image = check_image(make.webp(512, 384, lossless=True))
    assert (image.width, image.height) == (512, 384)


def test_extended_webp_accepted() -> None:
    """A WEBP with alpha (extended VP8X header) is accepted with its canvas size."""
    image = make.portrait(420, 360).convert("RGBA")
    image.putpixel((0, 0), (0, 0, 0, 0))  # real transparency, or the encoder drops the alpha
    out = io.BytesIO()
    image.save(out, "WEBP")
    assert out.getvalue()[12:16] == b"VP8X"
    image = check_image(out.getvalue())
    assert (image.width, image.height) == (420, 360)


def test_image_sha256_is_of_the_bytes() -> None:
    """`sha256` is the hex SHA-256 of the image bytes."""
    data = make.jpeg(400, 400)
    assert check_image(data).sha256 == hashlib.sha256(data).hexdigest()


def test_text_named_png_rejected() -> None:
    """Text bytes (a .txt renamed .png) are rejected by their content."""
    assert rejection(check_image, b"hello") == "That image file isn't a PNG, JPEG or WEBP."


def test_gif_rejected() -> None:
    """A real image in a format that isn't accepted (GIF) is rejected and the accepted ones named."""
    out = io.BytesIO()
    make.portrait(400, 400).save(out, "GIF")
    assert ACCEPTED_IMAGES in rejection(check_image, out.getvalue())


def test_empty_image_rejected() -> None:
    """Zero bytes are rejected."""
    assert "empty" in rejection(check_image, b"")


def test_tiny_image_rejected() -> None:
    """A 10×10 PNG is rejected, saying its size and the allowed range."""
    message = rejection(check_image, make.png(10, 10))
    assert message == "The image is 10×10 px. Use one between 300 and 6000 px on each side."


def test_image_too_wide_rejected() -> None:
    """A PNG 7000 px wide is rejected, even though the other side is fine."""
    assert rejection(check_image, make.png(7000, 400)).startswith("The image is 7000×400 px.")


def test_image_over_max_bytes_rejected() -> None:
    """An image over max_bytes is rejected with both sizes in MB."""
    data = make.png(400, 400)
    assert rejection(check_image, data, max_bytes=len(data) - 1).startswith("The image is 0.1 MB.")


def test_size_just_over_the_limit_reads_as_over() -> None:
    """1 MB + 1000 bytes against a 1 MB limit reads "1.1 MB", not "1.0 MB"."""
    message = rejection(check_image, b"\x89PNG" + bytes(MB + 1000), max_bytes=MB)
    assert message == "The image is 1.1 MB. The limit is 1 MB."


def test_truncated_png_rejected() -> None:
    """A PNG cut in half is rejected as damaged."""
    data = make.png(400, 400)
    assert rejection(check_image, data[: len(data) // 2]).startswith(DAMAGED_IMAGE)


def test_png_without_its_end_rejected() -> None:
    """A PNG missing its IEND chunk (which Pillow alone would accept) is rejected."""
    data = make.png(400, 400)
    assert data.endswith(png_chunk(b"IEND", b""))
    assert rejection(check_image, data[:-12]).startswith(DAMAGED_IMAGE)


def test_png_with_corrupt_pixels_rejected() -> None:
    """A PNG whose compressed pixels are garbage (with a valid chunk CRC) is rejected by decoding it."""
    chunks = png_chunks(make.png(400, 400))
    rebuilt = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        if kind == b"IDAT":
            body = body[:2] + bytes(255 - b for b in body[2:])
        rebuilt += png_chunk(kind, body)
    assert rejection(check_image, rebuilt).startswith(DAMAGED_IMAGE)


def test_png_claiming_more_pixels_than_it_holds_rejected() -> None:
    """A 300×300 PNG header over the pixel data of a 10×10 image is rejected."""
    rebuilt = b"\x89PNG\r\n\x1a\n"
    for kind, body in png_chunks(make.png(10, 10)):
        if kind == b"IHDR":
            body = struct.pack(">II", 300, 300) + body[8:]
        rebuilt += png_chunk(kind, body)
    assert rejection(check_image, rebuilt).startswith(DAMAGED_IMAGE)


def test_truncated_jpeg_rejected() -> None:
    """A JPEG missing its last bytes is rejected as damaged."""
    data = make.jpeg(400, 400)
    assert rejection(check_image, data[:-2]).startswith(DAMAGED_IMAGE)


def test_truncated_webp_rejected() -> None:
    """A WEBP cut short is rejected as damaged."""
    data = make.webp(400, 400)
    assert rejection(check_image, data[:-100]).startswith(DAMAGED_IMAGE)


def test_decompression_bomb_rejected_from_its_header() -> None:
    """A PNG claiming 100000×100000 px is refused at once, without allocating its pixels."""
    bomb = make.png_header_only(100_000, 100_000)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = rejection(check_image, bomb)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.startswith("The image is 100000×100000 px.")
    assert elapsed < 0.5
    assert peak < MB


def test_bomb_rejected_when_pillow_has_no_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bomb check does not depend on Pillow's global MAX_IMAGE_PIXELS."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert rejection(check_image, make.png_header_only(50_000, 50_000)).startswith("The image is 50000×")


def test_pillow_pixel_limit_is_an_error_not_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image Pillow would only warn about (over MAX_IMAGE_PIXELS) is rejected."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    assert "too many pixels" in rejection(check_image, make.png(400, 400))


# ------------------------------------------------------------------------------------------------- audio


def test_wav_accepted() -> None:
    """A 3 s PCM WAV is accepted as audio/wav lasting 3 s."""
    audio = check_audio(make.wav(3))
    assert (audio.mime, audio.duration_s, audio.converted_from) == ("audio/wav", 3.0, None)


def test_mp3_accepted() -> None:
    """A 3 s MPEG-1 MP3 is accepted as audio/mpeg, its frames counting to about 3 s."""
    audio = check_audio(make.mp3(3))
    assert audio.mime == "audio/mpeg"
    assert audio.duration_s == pytest.approx(3.0, abs=0.001)


def test_mpeg2_mp3_accepted() -> None:
    """A 16 kHz (MPEG-2 Layer III) MP3 is accepted with its duration."""
    assert check_audio(make.mp3(5, sample_rate=16000)).duration_s == pytest.approx(5.0, abs=0.001)


def test_mp3_with_tags_accepted() -> None:
    """ID3v2 in front and ID3v1 at the end neither break an MP3 nor change its duration."""
    bare = make.mp3(3)
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 0x08, 0x00]) + bytes(1024)  # syncsafe size 1024
    id3v1 = b"TAG" + bytes(125)
    assert check_audio(id3v2 + bare + id3v1).duration_s == check_audio(bare).duration_s


def test_flac_accepted() -> None:
    """A FLAC is accepted as audio/flac with the duration of its frames."""
    audio = check_audio(make.flac(3))
    assert (audio.mime, audio.duration_s) == ("audio/flac", 3.0)


def test_audio_sha256_is_of_the_bytes() -> None:
    """`sha256` is the hex SHA-256 of the audio bytes."""
    data = make.wav(1)
    assert check_audio(data).sha256 == hashlib.sha256(data).hexdigest()


def test_empty_audio_rejected() -> None:
    """Zero bytes are rejected."""
    assert "empty" in rejection(check_audio, b"")


def test_text_audio_rejected() -> None:
    """Text bytes are rejected with the accepted formats named."""
    assert rejection(check_audio, b"hello") == f"That audio file isn't an {ACCEPTED_AUDIO} file."


def test_aac_rejected() -> None:
    """An AAC (ADTS) stream, whose sync word looks like MPEG audio, is not taken for MP3."""
    assert ACCEPTED_AUDIO in rejection(check_audio, b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(400))


def test_audio_over_max_bytes_rejected() -> None:
    """An audio file over max_bytes is rejected with both sizes in MB."""
    message = rejection(check_audio, make.wav(20, sample_rate=32000), max_bytes=MB)
    assert message == "The audio is 1.2 MB. The limit is 1 MB."


def test_long_wav_rejected() -> None:
    """A 31 s WAV is rejected against a 30 s limit."""
    assert rejection(check_audio, make.wav(31)) == "The audio is 31.0 s long. The limit is 30 s."


def test_long_mp3_rejected() -> None:
    """A 31 s MP3 is rejected against a 30 s limit."""
    assert rejection(check_audio, make.mp3(31)) == "The audio is 31.0 s long. The limit is 30 s."


def test_very_long_audio_measured_only_past_the_limit() -> None:
    """Measuring gives up at four times the limit and says the clip is over that."""
    message = rejection(check_audio, make.mp3(125, sample_rate=8000))
    assert message == "The audio is over 120 s long. The limit is 30 s."


def test_mp3_of_exactly_the_limit_accepted() -> None:
    """A 30 s MP3 is accepted at 30 s: LAME's padding to whole frames, recorded in its tag, is not counted."""
    assert check_audio(make.mp3(30)).duration_s == pytest.approx(30.0, abs=0.001)


def test_mp3_gapless_trim_is_capped() -> None:
    """A LAME tag claiming the most padding it can (2 × 4095 samples, 0.19 s) trims no more than 3 frames."""
    data = bytearray(make.mp3(30.1))
    lame_at = data.index(b"LAME")
    data[lame_at + 21 : lame_at + 24] = b"\xff\xff\xff"
    assert rejection(check_audio, bytes(data)) == "The audio is 30.1 s long. The limit is 30 s."


def test_lying_mp3_header_fools_a_naive_reader() -> None:
    """The lying-header factory works: mutagen trusts the Xing tag and reports 5 s for 31 s of frames."""
    info = mutagen.mp3.MP3(io.BytesIO(make.mp3_with_lying_header(31, 5))).info
    assert info.length == pytest.approx(5.0, abs=0.1)


@pytest.mark.parametrize(
    ("make_lying", "claimed_s"),
    [
        pytest.param(lambda: make.mp3_with_lying_header(31, 5), 5.0, id="mp3-xing-frames"),
        pytest.param(lambda: wav_with(make.wav(31), data_size=16000 * 2), 1.0, id="wav-data-size"),
        pytest.param(lambda: flac_with_total_samples(make.flac(31), 16000), 1.0, id="flac-streaminfo"),
    ],
)
def test_libsndfile_decodes_only_what_a_lying_header_claims(
    make_lying: Callable[[], bytes], claimed_s: float
) -> None:
    """Why durations are measured by hand: libsndfile stops reading at the length the header claims.

    Its sf_readf_*() return nothing once the position reaches the header's frame count (the Xing frame
    count, the `data` chunk size, STREAMINFO's total), so decoding 31 s of audio through soundfile in
    blocks counts what the header says. If this test fails, soundfile could replace the frame walks.
    """
    with soundfile.SoundFile(io.BytesIO(make_lying())) as sound:
        decoded = sum(len(block) for block in sound.blocks(blocksize=sound.samplerate))
        assert decoded / sound.samplerate == pytest.approx(claimed_s, abs=0.1)


def test_lying_mp3_header_rejected() -> None:
    """An MP3 whose Xing tag claims 5 s is measured by its frames and rejected at 31 s."""
    message = rejection(check_audio, make.mp3_with_lying_header(31, 5))
    assert message == "The audio is 31.0 s long. The limit is 30 s."


def test_mp3_with_much_junk_rejected() -> None:
    """An MP3 with tens of KB of non-audio bytes in mid-stream (room to hide audio) is rejected."""
    data = make.mp3(3)
    middle = len(data) // 2
    assert "damaged" in rejection(check_audio, data[:middle] + bytes(32 * 1024) + data[middle:])


def test_wav_with_small_data_size_measured_from_its_bytes() -> None:
    """A 31 s WAV whose data chunk claims 1 s is measured by the bytes present and rejected."""
    data = wav_with(make.wav(31), data_size=16000 * 2)
    assert rejection(check_audio, data) == "The audio is 31.0 s long. The limit is 30 s."


def test_wav_with_oversized_data_size_measured_from_its_bytes() -> None:
    """A 3 s WAV whose data chunk claims far more bytes than the file holds lasts 3 s."""
    assert check_audio(wav_with(make.wav(3), data_size=0xFFFF_FFF0)).duration_s == 3.0


def test_wav_with_lying_byte_rate_rejected() -> None:
    """A WAV whose byte rate disagrees with sample rate × block size is rejected."""
    message = rejection(check_audio, wav_with(make.wav(31), byte_rate=64000))
    assert message.startswith("That WAV file's format header doesn't add up.")


def test_wav_with_lying_sample_rate_and_byte_rate_measured() -> None:
    """A WAV that halves both rates consistently is played slower, so it lasts twice as long."""
    data = wav_with(make.wav(20), sample_rate=8000, byte_rate=16000)
    assert rejection(check_audio, data) == "The audio is 40.0 s long. The limit is 30 s."


def test_wav_with_no_channels_rejected() -> None:
    """A WAV format block with zero channels is rejected."""
    assert "doesn't add up" in rejection(check_audio, wav_with(make.wav(1), channels=0))


def test_compressed_wav_rejected() -> None:
    """A WAV holding ADPCM rather than PCM samples is rejected."""
    assert "isn't plain PCM" in rejection(check_audio, wav_with(make.wav(1), format_tag=2))


def test_wav_without_samples_rejected() -> None:
    """A WAV with an empty data chunk is rejected as having no sound."""
    assert "no sound" in rejection(check_audio, make.wav(0))


def test_long_flac_rejected() -> None:
    """A 31 s FLAC is rejected against a 30 s limit."""
    assert rejection(check_audio, make.flac(31)) == "The audio is 31.0 s long. The limit is 30 s."


def test_flac_with_lying_total_samples_rejected() -> None:
    """A 31 s FLAC whose STREAMINFO claims 1 s is measured by its frames and rejected."""
    data = flac_with_total_samples(make.flac(31), 16000)
    assert rejection(check_audio, data) == "The audio is 31.0 s long. The limit is 30 s."


def test_flac_with_unknown_length_measured() -> None:
    """A FLAC whose STREAMINFO leaves the length unknown (0) is measured by its frames."""
    assert check_audio(flac_with_total_samples(make.flac(3), 0)).duration_s == 3.0


def test_flac_with_unreadable_frames_rejected() -> None:
    """A FLAC holding far more bytes than the frames found could fill is rejected as damaged."""
    data = make.flac(31)
    first = data.index(b"\xff\xf8\xc5\x08")
    # Every later frame header now claims two channels: no decoder plays it, and it isn't counted.
    broken = data[: first + 4] + data[first + 4 :].replace(b"\xff\xf8\xc5\x08", b"\xff\xf8\xc5\x18")
    assert rejection(check_audio, broken).startswith("That FLAC file is damaged or incomplete.")


def test_ogg_opus_converted_to_flac() -> None:
    """An Ogg Opus voice message is accepted as FLAC, measured after conversion."""
    audio = check_audio(make.ogg_opus(3))
    assert (audio.mime, audio.converted_from) == ("audio/flac", "audio/ogg")
    assert audio.data.startswith(b"fLaC")
    assert audio.duration_s == pytest.approx(3.0, abs=0.05)
    assert audio.sha256 == hashlib.sha256(audio.data).hexdigest()


def test_converted_ogg_is_itself_valid_flac() -> None:
    """The FLAC made from an Ogg passes validation with the same duration."""
    converted = check_audio(make.ogg_opus(2))
    assert check_audio(converted.data).duration_s == converted.duration_s


def test_ogg_vorbis_converted_to_flac() -> None:
    """An Ogg Vorbis file is accepted as FLAC."""
    audio = check_audio(make.ogg_vorbis(2))
    assert (audio.mime, audio.converted_from) == ("audio/flac", "audio/ogg")
    assert audio.duration_s == pytest.approx(2.0, abs=0.05)


def test_long_ogg_rejected() -> None:
    """A 31 s voice message is rejected against a 30 s limit."""
    assert rejection(check_audio, make.ogg_opus(31)) == "The audio is 31.0 s long. The limit is 30 s."


def test_damaged_ogg_rejected() -> None:
    """Bytes that start like Ogg but do not decode are rejected as damaged."""
    assert rejection(check_audio, b"OggS" + bytes(500)).startswith("That OGG file is damaged")


def test_second_wav_format_block_rejected() -> None:
    """A WAV with a second `fmt ` chunk (which could change the arithmetic after the data) is rejected."""
    data = make.wav(1)
    extra_fmt = data[12:36]  # the stdlib writer's 24-byte fmt chunk
    assert "damaged" in rejection(check_audio, data + extra_fmt)


# --------------------------------------------------------------------------------------------- robustness

_IMAGES = [make.png(300, 320), make.jpeg(300, 320), make.webp(300, 320), make.webp(300, 320, lossless=True)]
_CLIPS = [make.wav(0.5), make.mp3(0.5), make.mp3(0.5, 16000), make.flac(0.5), make.ogg_opus(0.5)]


def _mangle(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: max(1, len(data) - cut)])
    for where, value in flips:
        out[where % len(out)] = value
    return bytes(out)


_MANGLING = dict(
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(which=st.integers(0, len(_IMAGES) - 1), **_MANGLING)
def test_damaged_images_only_raise_invalid_media(which: int, cut: int, flips: list[tuple[int, int]]) -> None:
    """A real image cut short or with bytes changed is accepted or refused with InvalidMedia, nothing else."""
    with contextlib.suppress(InvalidMedia):
        check_image(_mangle(_IMAGES[which], cut, flips))


@settings(max_examples=150, deadline=None)
@given(which=st.integers(0, len(_CLIPS) - 1), **_MANGLING)
def test_damaged_audio_only_raises_invalid_media(which: int, cut: int, flips: list[tuple[int, int]]) -> None:
    """A real clip cut short or with bytes changed is accepted or refused with InvalidMedia, nothing else."""
    try:
        audio = check_audio(_mangle(_CLIPS[which], cut, flips))
    except InvalidMedia:
        return
    assert 0 < audio.duration_s <= 30
