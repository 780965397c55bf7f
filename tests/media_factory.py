"""Real media files made in memory, for any test that needs an image or a clip.

Images are drawn with Pillow (a simple face, so a human looking at a failure sees a portrait); audio is a
tone, written with the stdlib `wave` module (WAV) or soundfile, whose wheel bundles libsndfile with LAME,
FLAC, Vorbis and Opus (MP3, FLAC, Ogg).
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
import zlib
from array import array

import numpy as np
import soundfile
from PIL import Image, ImageDraw

# --------------------------------------------------------------------------------------------- images


def portrait(width: int, height: int) -> Image.Image:
    """A cartoon face filling a `width`×`height` RGB canvas."""
    image = Image.new("RGB", (width, height), (70, 110, 160))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    draw.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.9), fill=(235, 190, 160), outline=(90, 60, 40))
    for x in (0.37, 0.63):
        draw.ellipse((w * (x - 0.05), h * 0.35, w * (x + 0.05), h * 0.45), fill="white")
        draw.ellipse((w * (x - 0.02), h * 0.38, w * (x + 0.02), h * 0.42), fill=(40, 40, 40))
    draw.line((w * 0.5, h * 0.45, w * 0.47, h * 0.6, w * 0.53, h * 0.6), fill=(150, 100, 80), width=3)
    draw.arc((w * 0.38, h * 0.6, w * 0.62, h * 0.75), 20, 160, fill=(150, 40, 40), width=4)
    return image


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png(width: int, height: int) -> bytes:
    """A PNG portrait of this size."""
    return _save(portrait(width, height), "PNG")


def jpeg(width: int, height: int) -> bytes:
    """A JPEG portrait of this size."""
    return _save(portrait(width, height), "JPEG", quality=85)


def webp(width: int, height: int, *, lossless: bool = False) -> bytes:
    """A WEBP portrait of this size (lossy VP8 unless `lossless`, then VP8L)."""
    return _save(portrait(width, height), "WEBP", lossless=lossless)


def png_header_only(width: int, height: int) -> bytes:
    """A structurally valid PNG that claims `width`×`height` and holds one empty IDAT: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------- audio


def tone(seconds: float, sample_rate: int, frequency: float = 220.0) -> np.ndarray:
    """A mono float tone with a little vibrato, shaped like speech's loudness, as float32 samples."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wave_ = 0.3 * np.sin(2 * np.pi * frequency * t + 3 * np.sin(2 * np.pi * 5 * t))
    return (wave_ * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


def wav(seconds: float, sample_rate: int = 16000) -> bytes:
    """A 16-bit mono PCM WAV of a tone, written with the stdlib `wave` module."""
    count = round(seconds * sample_rate)
    samples = array("h", (int(9000 * math.sin(2 * math.pi * 220 * i / sample_rate)) for i in range(count)))
    if sys.byteorder == "big":  # WAV samples are little-endian
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def _encode(seconds: float, sample_rate: int, fmt: str, subtype: str | None) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, tone(seconds, sample_rate), sample_rate, format=fmt, subtype=subtype)
    return out.getvalue()


def mp3(seconds: float, sample_rate: int = 44100) -> bytes:
    """A real MP3 (LAME through libsndfile): MPEG-1 Layer III at 32/44.1/48 kHz, MPEG-2 below that.

    LAME starts it with a Xing frame that gives the true frame count.
    """
    return _encode(seconds, sample_rate, "MP3", "MPEG_LAYER_III")


def flac(seconds: float, sample_rate: int = 16000) -> bytes:
    """A 16-bit mono FLAC of a tone."""
    return _encode(seconds, sample_rate, "FLAC", "PCM_16")


def ogg_opus(seconds: float) -> bytes:
    """An Ogg Opus file at 48 kHz, like a Discord voice message."""
    return _encode(seconds, 48000, "OGG", "OPUS")


def ogg_vorbis(seconds: float, sample_rate: int = 44100) -> bytes:
    """An Ogg Vorbis file."""
    return _encode(seconds, sample_rate, "OGG", "VORBIS")


def mp3_with_lying_header(real_seconds: float, claimed_seconds: float, sample_rate: int = 44100) -> bytes:
    """A real MP3 of `real_seconds` whose Xing tag claims `claimed_seconds`.

    Readers that trust the tag (mutagen, most players' length display) report the claimed length.
    """
    data = bytearray(mp3(real_seconds, sample_rate))
    samples_per_frame = 1152 if sample_rate >= 32000 else 576
    tag_at = next((data.find(tag, 0, 64) for tag in (b"Xing", b"Info") if data.find(tag, 0, 64) != -1), -1)
    if tag_at == -1:
        raise RuntimeError("expected LAME to write a Xing/Info tag in the first frame")
    (flags,) = struct.unpack_from(">I", data, tag_at + 4)
    if not flags & 1:
        raise RuntimeError("expected the Xing tag to carry a frame count")
    claimed_frames = round(claimed_seconds * sample_rate / samples_per_frame)
    struct.pack_into(">I", data, tag_at + 8, claimed_frames)
    return bytes(data)
