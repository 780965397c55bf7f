"""Validation of the two attachments of `/animate`: a portrait image and a speech clip.

Every check reads the bytes. File names and the content type Discord reports are never looked at: the
member chooses both. Durations are measured from the audio itself (MPEG frames walked, WAV data bytes
counted, FLAC frame headers found), never taken from a header that a member could have edited. Decoding
with soundfile would not do: libsndfile stops reading at the length the header claims (a test pins this).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Final

import soundfile
from PIL import Image

from core.errors import InvalidMedia

log = logging.getLogger(__name__)

ACCEPTED_IMAGES: Final = "PNG, JPEG or WEBP"
ACCEPTED_AUDIO: Final = "MP3, WAV, FLAC or OGG"

MIN_IMAGE_SIDE_PX: Final = 300
MAX_IMAGE_SIDE_PX: Final = 6000

# Discord and Settings (10 * 1024 * 1024 == "10 MB") both count a megabyte as 2**20 bytes.
_MB: Final = 1024 * 1024


@dataclass(frozen=True)
class ValidImage:
    """An image that passed validation: its bytes, MIME type and pixel size."""

    data: bytes
    mime: str  # "image/png" | "image/jpeg" | "image/webp"
    width: int
    height: int
    sha256: str  # hex digest of `data`


@dataclass(frozen=True)
class ValidAudio:
    """An audio clip that passed validation, ready to upload as it is.

    `converted_from` names the MIME type of the member's file when `data` is a conversion of it
    (an Ogg voice message becomes FLAC); `duration_s` and `sha256` then describe the converted `data`.
    """

    data: bytes
    mime: str  # "audio/mpeg" | "audio/wav" | "audio/flac"
    duration_s: float
    sha256: str  # hex digest of `data`
    converted_from: str | None = None


# ---------------------------------------------------------------------------------------------- messages


def _one_decimal_over(value: float, limit: float) -> str:
    """`value` with one decimal, rounded up where plain rounding would not show it above `limit`."""
    shown = round(value, 1)
    if shown <= limit:
        # "The audio is 30.0 s long. The limit is 30 s." would read as a bug: 30.04 is shown as 30.1.
        shown = math.ceil(value * 10) / 10
    return f"{shown:.1f}"


def _limit(value: float) -> str:
    """A limit as a member reads it: 10.0 -> "10", 1.5 -> "1.5"."""
    return f"{round(value, 1):g}"


def too_big(what: str, size: int, max_bytes: int) -> InvalidMedia:
    """The refusal of a file over its size limit, in MB as Discord writes them."""
    size_mb, limit_mb = _one_decimal_over(size / _MB, max_bytes / _MB), _limit(max_bytes / _MB)
    if what == "image":
        return InvalidMedia("The image is {size} MB. The limit is {limit} MB.", size=size_mb, limit=limit_mb)
    return InvalidMedia("The audio is {size} MB. The limit is {limit} MB.", size=size_mb, limit=limit_mb)


def _too_long(seconds: float, max_seconds: float) -> InvalidMedia:
    shown = _one_decimal_over(seconds, max_seconds)
    return InvalidMedia(
        "The audio is {length} s long. The limit is {limit} s.", length=shown, limit=_limit(max_seconds)
    )


def _damaged_image() -> InvalidMedia:
    return InvalidMedia("That image file is damaged or incomplete. Save it again as PNG, JPEG or WEBP.")


def _damaged_audio(kind: str) -> InvalidMedia:
    return InvalidMedia(
        "That {kind} file is damaged or incomplete. Export it again as MP3, WAV, FLAC or OGG.", kind=kind
    )


def _no_sound(kind: str) -> InvalidMedia:
    return InvalidMedia(
        "That {kind} file has no sound in it. Use a clip of speech as MP3, WAV, FLAC or OGG.", kind=kind
    )


# ------------------------------------------------------------------------------------------------- image

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_IMAGE_MIME: Final = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
# JPEG start-of-frame markers (every SOFn but DHT C4, JPG C8 and DAC CC); they carry the frame size.
_JPEG_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
# Errors Pillow raises for broken input: plugins raise SyntaxError for bad structure, OSError for a
# truncated stream or a failed decoder, ValueError for an oversized text chunk (a zlib bomb), and the rest
# leak from struct/zlib on garbage.
_PILLOW_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def validate_image(data: bytes, *, max_bytes: int) -> ValidImage:
    """Check that `data` is a whole PNG, JPEG or WEBP of 300–6000 px per side and at most `max_bytes`.

    Raises InvalidMedia with a message for the member.
    """
    if not data:
        raise InvalidMedia("The image file is empty. Use a PNG, JPEG or WEBP image.")
    if len(data) > max_bytes:
        raise too_big("image", len(data), max_bytes)
    kind = _image_kind(data)
    if kind is None:
        raise InvalidMedia("That image file isn't a PNG, JPEG or WEBP.")

    # The size comes from our own reading of the header, before Pillow allocates anything: a 100000 px
    # square is refused here at once, whatever Image.MAX_IMAGE_PIXELS is set to.
    width, height = _image_header_size(kind, data)
    sides = (MIN_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX)
    if not (sides[0] <= width <= sides[1] and sides[0] <= height <= sides[1]):
        raise InvalidMedia(
            "The image is {width}×{height} px. Use one between {smallest} and {largest} px on each side.",
            width=width,
            height=height,
            smallest=sides[0],
            largest=sides[1],
        )
    # Pillow only *warns* (DecompressionBombWarning) between MAX_IMAGE_PIXELS and twice that. Its check is
    # repeated here so the warning case is an error too, without warnings.catch_warnings(), which swaps
    # process-wide filters and is not safe in the worker threads that run this.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and width * height > pillow_limit:
        raise InvalidMedia(
            "The image has too many pixels ({width}×{height} px). Use a smaller one.",
            width=width,
            height=height,
        )

    _decode_image(kind, data, width, height)
    return ValidImage(
        data=data,
        mime=_IMAGE_MIME[kind],
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _image_kind(data: bytes) -> str | None:
    """The Pillow format name that `data` starts like, or None."""
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _image_header_size(kind: str, data: bytes) -> tuple[int, int]:
    """(width, height) read from the header of a PNG, JPEG or WEBP; InvalidMedia if there is none."""
    try:
        if kind == "PNG":
            return _png_size(data)
        if kind == "JPEG":
            return _jpeg_size(data)
        return _webp_size(data)
    except (IndexError, struct.error) as exc:  # a header cut short
        raise _damaged_image() from exc


def _png_size(data: bytes) -> tuple[int, int]:
    """Walk every chunk (checking its CRC) up to IEND; Pillow itself accepts a PNG that lost its end."""
    view = memoryview(data)
    pos = len(_PNG_MAGIC)
    size: tuple[int, int] | None = None
    while True:
        (length,) = struct.unpack_from(">I", data, pos)
        chunk_type = data[pos + 4 : pos + 8]
        crc_at = pos + 8 + length
        if crc_at + 4 > len(data):
            raise _damaged_image()
        (crc,) = struct.unpack_from(">I", data, crc_at)
        if zlib.crc32(view[pos + 4 : crc_at]) != crc:
            raise _damaged_image()
        if size is None:
            if chunk_type != b"IHDR" or length != 13:
                raise _damaged_image()
            size = struct.unpack_from(">II", data, pos + 8)
        if chunk_type == b"IEND":
            return size
        pos = crc_at + 4


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers to the first start-of-frame segment."""
    pos = 2
    while True:
        if data[pos] != 0xFF:
            raise _damaged_image()
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            raise _damaged_image()
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise _damaged_image()
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + length


def _webp_size(data: bytes) -> tuple[int, int]:
    """Canvas size from the first chunk of a WEBP (VP8X extended, VP8L lossless or VP8 lossy)."""
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 > len(data):
        raise _damaged_image()
    chunk = data[12:16]
    if chunk == b"VP8X":
        if len(data) < 30:
            raise _damaged_image()
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise _damaged_image()
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise _damaged_image()
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    raise _damaged_image()


def _decode_image(kind: str, data: bytes, width: int, height: int) -> None:
    """Decode every pixel with Pillow; a truncated or corrupt image raises InvalidMedia."""
    try:
        with Image.open(io.BytesIO(data), formats=[kind]) as image:
            if image.size != (width, height):
                raise _damaged_image()
            image.load()
    except _PILLOW_ERRORS as exc:
        raise _damaged_image() from exc


# ------------------------------------------------------------------------------------------------- audio


def validate_audio(data: bytes, *, max_bytes: int, max_seconds: float) -> ValidAudio:
    """Check that `data` is an MP3, WAV or FLAC of at most `max_bytes` and `max_seconds`.

    An Ogg file (Vorbis or Opus, as Discord voice messages are) is decoded and returned as FLAC.
    Raises InvalidMedia with a message for the member.
    """
    if not data:
        raise InvalidMedia("The audio file is empty. Use MP3, WAV, FLAC or OGG.")
    if len(data) > max_bytes:
        raise too_big("audio", len(data), max_bytes)

    give_up_s = _MEASURE_FACTOR * max_seconds
    converted_from = None
    start = _skip_id3v2(data, 0)  # some taggers put an ID3v2 tag in front of FLAC too
    if data[start : start + 4] == b"fLaC":
        mime, duration = "audio/flac", _flac_duration(data, start, give_up_s)
    elif data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        mime, duration = "audio/wav", _wav_duration(data)
    elif start > 0 or _mpeg_frame(data, 0) is not None:
        mime, duration = "audio/mpeg", _mp3_duration(data, give_up_s)
    elif data[:4] == b"OggS":
        # Discord voice messages are Ogg Opus; Runware takes MP3, WAV or FLAC.
        converted_from = "audio/ogg"
        data, duration = _ogg_to_flac(data, max_seconds, give_up_s)
        mime = "audio/flac"
    else:
        raise InvalidMedia("That audio file isn't an MP3, WAV, FLAC or OGG file.")

    if duration > give_up_s:
        raise InvalidMedia(
            "The audio is over {length} s long. The limit is {limit} s.",
            length=_limit(give_up_s),
            limit=_limit(max_seconds),
        )
    if duration > max_seconds:
        raise _too_long(duration, max_seconds)
    if converted_from:
        log.debug("converted %s to %s: %.1f s, %d bytes", converted_from, mime, duration, len(data))
    return ValidAudio(
        data=data,
        mime=mime,
        duration_s=duration,
        sha256=hashlib.sha256(data).hexdigest(),
        converted_from=converted_from,
    )


# Measuring stops this many times past the limit: far enough to say how long a clip really is, near
# enough that a few bytes claiming hours of silence cannot keep a worker busy.
_MEASURE_FACTOR: Final = 4


# --- MP3


@dataclass(frozen=True)
class _MpegFrame:
    length: int  # bytes, header included
    version: int  # header bits: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
    sample_rate: int
    samples: int  # per frame
    mono: bool
    crc: bool  # a 16-bit CRC follows the header


_MPEG_LAYER3_KBPS: Final = {
    3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    0: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_SAMPLE_RATES: Final = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# Bytes that are neither frames nor a leading ID3v2 / trailing ID3v1 tag. Encoders leave none, and
# taggers leave little (padding, a small APE tag); much more could hide audio that a decoder plays and
# this walk does not count (free-format or Layer I/II frames).
_MP3_MAX_JUNK: Final = 8 * 1024


def _skip_id3v2(data: bytes, pos: int) -> int:
    """Position after any ID3v2 tags that start at `pos`."""
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + 10:
        size_bytes = data[pos + 6 : pos + 10]
        if any(byte & 0x80 for byte in size_bytes):  # the size is "syncsafe": 7 bits a byte
            break
        size = 0
        for byte in size_bytes:
            size = size << 7 | byte
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    return pos


def _mpeg_frame(data: bytes, pos: int) -> _MpegFrame | None:
    """The MPEG audio Layer III frame whose header is at `pos`, or None if there is none there."""
    if pos + 4 > len(data) or data[pos] != 0xFF:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version = (b1 >> 3) & 3
    layer = (b1 >> 1) & 3
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 3
    # Layer III only (that is what "MP3" means); bitrate index 0 is free format, which we don't count.
    if b1 & 0xE0 != 0xE0 or version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    if b3 & 3 == 2:  # reserved emphasis
        return None
    sample_rate = _MPEG_SAMPLE_RATES[version][rate_index]
    bitrate = _MPEG_LAYER3_KBPS[version][bitrate_index] * 1000
    mpeg1 = version == 3
    length = (144 if mpeg1 else 72) * bitrate // sample_rate + ((b2 >> 1) & 1)
    return _MpegFrame(
        length=length,
        version=version,
        sample_rate=sample_rate,
        samples=1152 if mpeg1 else 576,
        mono=b3 >> 6 == 3,
        crc=not b1 & 1,
    )


def _vbr_tag_at(data: bytes, pos: int, frame: _MpegFrame) -> int | None:
    """Where the Xing/Info or VBRI tag in the frame at `pos` starts, if the frame holds one.

    Such a frame is a header that decoders play as silence or skip, not audio.
    """
    side_info = (17 if frame.mono else 32) if frame.version == 3 else (9 if frame.mono else 17)
    xing_at = pos + 4 + (2 if frame.crc else 0) + side_info
    if data[xing_at : xing_at + 4] in (b"Xing", b"Info"):
        return xing_at
    if data[pos + 36 : pos + 40] == b"VBRI":
        return pos + 36
    return None


def _gapless_trim(data: bytes, tag_at: int, frame: _MpegFrame) -> int:
    """Samples that decoders drop from an MP3: the encoder delay and padding in a LAME tag, capped.

    LAME pads the start and end of the stream to whole frames and records by how much, so that a
    30.00 s clip plays as 30.00 s rather than 30.04 s; without this a clip cut to the limit is refused.
    The figures are a header a member could edit, so no more than three frames' worth is believed
    (honest files need under three), which bounds what a lie can gain to a fraction of a second.
    """
    if data[tag_at : tag_at + 4] not in (b"Xing", b"Info") or tag_at + 8 > len(data):
        return 0
    (flags,) = struct.unpack_from(">I", data, tag_at + 4)
    # The LAME extension follows the Xing fields present: frames, bytes, table of contents, quality.
    lame_at = (
        tag_at + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 2) + 100 * bool(flags & 4) + 4 * bool(flags & 8)
    )
    if data[lame_at : lame_at + 4] not in (b"LAME", b"Lavc", b"Lavf") or lame_at + 24 > len(data):
        return 0
    packed = int.from_bytes(data[lame_at + 21 : lame_at + 24], "big")
    return min((packed >> 12) + (packed & 0xFFF), 3 * frame.samples)


def _mp3_tags_start(data: bytes) -> int:
    """Where a trailing ID3v1 tag begins, or len(data) if there is none."""
    if len(data) >= 128 and data[-128:-125] == b"TAG":
        return len(data) - 128
    return len(data)


def _mp3_duration(data: bytes, give_up_s: float) -> float:
    """Seconds of audio in an MP3, counted frame by frame (stopping once past `give_up_s`).

    A Xing/Info/VBRI tag or the first frame's bitrate would be quicker, but a member can edit either
    to claim a short clip, and what a decoder plays is the frames. Only the LAME tag's gapless trim is
    taken from a header, and only up to three frames of it.
    """
    # A trailing ID3v1 tag (128 bytes) is not junk. Other trailing tags (APE, Lyrics3) are rare on MP3
    # and, being of any size, are taken as junk: a small one fits in the allowance.
    tags_at = _mp3_tags_start(data)
    pos = _skip_id3v2(data, 0)
    first: _MpegFrame | None = None
    frames = 0
    trim = 0
    junk = 0
    in_sync = False
    while pos < len(data):
        frame = _mpeg_frame(data, pos)
        if frame is not None and first is not None and not _same_stream(frame, first):
            frame = None  # a stream does not change rate midway: this is junk that looks like a header
        # Out of sync (at the start, or after junk) a header is trusted only if another follows it.
        if frame is not None and not in_sync and not _mpeg_chains(data, pos + frame.length, tags_at, frame):
            frame = None
        if frame is None:
            in_sync = False
            next_sync = data.find(b"\xff", pos + 1)
            next_sync = len(data) if next_sync == -1 else next_sync
            junk += max(0, min(next_sync, tags_at) - pos)
            if junk > _MP3_MAX_JUNK:
                raise _damaged_audio("MP3")
            pos = next_sync
            continue
        in_sync = True
        if first is None:
            first = frame
            tag_at = _vbr_tag_at(data, pos, frame)
            if tag_at is not None:
                trim = _gapless_trim(data, tag_at, frame)
                pos += frame.length
                continue
        pos += frame.length
        # A last frame cut short still counts: decoders play what there is of it.
        frames += 1
        if frames * first.samples > give_up_s * first.sample_rate:
            return frames * first.samples / first.sample_rate  # untrimmed: it must read as past give_up_s
    samples = frames * first.samples - trim if first is not None else 0
    if first is None or samples <= 0:
        raise _no_sound("MP3")
    return samples / first.sample_rate


def _same_stream(one: _MpegFrame, other: _MpegFrame) -> bool:
    return (one.version, one.sample_rate) == (other.version, other.sample_rate)


def _mpeg_chains(data: bytes, pos: int, tags_at: int, frame: _MpegFrame) -> bool:
    """Whether a frame like `frame` may end at `pos`: the frames end there or another frame follows."""
    if pos >= tags_at:
        return True
    following = _mpeg_frame(data, pos)
    return following is not None and _same_stream(following, frame)


# --- WAV

_WAV_PCM: Final = 0x0001
_WAV_FLOAT: Final = 0x0003
_WAV_EXTENSIBLE: Final = 0xFFFE
# KSDATAFORMAT_SUBTYPE_PCM/IEEE_FLOAT share this GUID tail after their 2-byte format tag.
_WAV_GUID_TAIL: Final = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


@dataclass(frozen=True)
class _WavFormat:
    byte_rate: int
    block_align: int


def _wav_duration(data: bytes) -> float:
    """Seconds of audio in a WAV, from the data bytes actually present and a format block that adds up."""
    pos = 12
    fmt: _WavFormat | None = None
    data_bytes = 0
    seen_data = False
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if fmt is not None:  # decoders use the first; a second could make the sums come out short
                raise _damaged_audio("WAV")
            fmt = _wav_format(data[body : body + size])
        elif chunk_id == b"data":
            if fmt is None:
                raise _damaged_audio("WAV")
            seen_data = True
            after = body + size + (size & 1)
            # The declared size is only a claim. Streaming writers leave 0 or 0xFFFFFFFF, a cut file
            # declares more than it has, and a doctored one declares less than it holds; some decoders
            # then play to the end of the file. Unless proper chunks follow, everything up to the end
            # counts.
            if size > len(data) - body or not _riff_chunks_until_end(data, after):
                data_bytes += len(data) - body
                break
            data_bytes += size
        pos = body + size + (size & 1)
    if fmt is None:
        raise _damaged_audio("WAV")
    if not seen_data or data_bytes < fmt.block_align:
        raise _no_sound("WAV")
    return (data_bytes - data_bytes % fmt.block_align) / fmt.byte_rate


def _riff_chunks_until_end(data: bytes, pos: int) -> bool:
    """Whether well-formed RIFF chunks (printable ids, sizes that fit) run from `pos` to the end."""
    while len(data) - pos >= 8:
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if not all(0x20 <= byte <= 0x7E for byte in chunk_id) or pos + 8 + size > len(data):
            return False
        pos += 8 + size + (size & 1)
    # A few stray bytes (an odd pad byte, alignment) are too short to hold a chunk, or audio worth counting.
    return True


def _wav_format(block: bytes) -> _WavFormat:
    """The `fmt ` chunk, checked: PCM or float samples, and rates and sizes that agree with each other."""
    if len(block) < 16:
        raise _damaged_audio("WAV")
    tag, channels, sample_rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", block)
    if tag == _WAV_EXTENSIBLE:
        if len(block) < 40 or block[26:40] != _WAV_GUID_TAIL:
            raise _unsupported_wav()
        (tag,) = struct.unpack_from("<H", block, 24)
    if tag == _WAV_PCM:
        bits_ok = bits in (8, 16, 24, 32)
    elif tag == _WAV_FLOAT:
        bits_ok = bits in (32, 64)
    else:  # ADPCM, GSM, MP3-in-WAV…: rare, and not something to decode here
        raise _unsupported_wav()
    if (
        not bits_ok
        or not 1 <= channels <= 8
        or not 1000 <= sample_rate <= 384_000
        or block_align != channels * bits // 8
        or byte_rate != sample_rate * block_align
    ):
        raise InvalidMedia(
            "That WAV file's format header doesn't add up. Export it again as MP3, WAV, FLAC or OGG."
        )
    return _WavFormat(byte_rate=byte_rate, block_align=block_align)


def _unsupported_wav() -> InvalidMedia:
    return InvalidMedia("That WAV file isn't plain PCM audio. Use MP3, WAV, FLAC or OGG.")


# --- FLAC


@dataclass(frozen=True)
class _StreamInfo:
    sample_rate: int
    channels: int
    bits: int
    total_samples: int  # 0 means "unknown"


_FLAC_SYNC: Final = re.compile(rb"\xff[\xf8\xf9]")
_FLAC_RATES: Final = (0, 88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
_FLAC_BITS: Final = (0, 8, 12, -1, 16, 20, 24, 32)  # -1: reserved
# Most a FLAC frame can spend beyond its raw samples: a 16-byte header, a 2-byte CRC, and per channel a
# subframe header with wasted-bits field and padding to a byte. Rounded up.
_FLAC_FRAME_OVERHEAD: Final = 64
# Trailing bytes no decoder plays: an ID3v1 or APE tag that some taggers append.
_FLAC_TRAILER_ALLOWANCE: Final = 64 * 1024


def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8: Final = _crc8_table()


def _flac_duration(data: bytes, start: int, give_up_s: float) -> float:
    """Seconds of audio in a FLAC, from its frames cross-checked with STREAMINFO and the file size."""
    info, audio_at = _flac_metadata(data, start)
    samples, frames = _flac_frame_samples(data, audio_at, info, int(give_up_s * info.sample_rate))
    if samples > give_up_s * info.sample_rate:
        return samples / info.sample_rate
    if frames == 0:
        raise _no_sound("FLAC")
    # Frames whose headers we could not read would be sound we did not count. Even incompressible audio
    # stored verbatim takes no more room than its raw samples, so bytes beyond that mean missed frames.
    raw_bound = samples * info.channels * info.bits // 8 + frames * _FLAC_FRAME_OVERHEAD
    if len(data) - audio_at > raw_bound + _FLAC_TRAILER_ALLOWANCE:
        raise _damaged_audio("FLAC")
    # A STREAMINFO that claims more than was found is a cut file or a lie; the longer figure is the safe one.
    return max(samples, info.total_samples) / info.sample_rate


def _flac_metadata(data: bytes, start: int) -> tuple[_StreamInfo, int]:
    """STREAMINFO and where the audio frames begin, after the metadata blocks."""
    pos = start + 4
    info: _StreamInfo | None = None
    last = False
    while not last:
        if pos + 4 > len(data):
            raise _damaged_audio("FLAC")
        header = data[pos]
        last = bool(header & 0x80)
        block_type = header & 0x7F
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        body = pos + 4
        if body + length > len(data) or block_type == 127:
            raise _damaged_audio("FLAC")
        if info is None:
            if block_type != 0 or length != 34:  # STREAMINFO comes first and has a fixed size
                raise _damaged_audio("FLAC")
            info = _flac_streaminfo(data[body : body + 34])
        elif block_type == 0:
            raise _damaged_audio("FLAC")
        pos = body + length
    assert info is not None  # the loop runs at least once and sets it or raises
    return info, pos


def _flac_streaminfo(block: bytes) -> _StreamInfo:
    min_block, max_block = struct.unpack_from(">HH", block)
    (packed,) = struct.unpack_from(">Q", block, 10)
    sample_rate = packed >> 44
    channels = ((packed >> 41) & 0x7) + 1
    bits = ((packed >> 36) & 0x1F) + 1
    if not 1000 <= sample_rate <= 384_000 or min_block < 16 or max_block < min_block or bits < 4:
        raise _damaged_audio("FLAC")
    return _StreamInfo(sample_rate, channels, bits, total_samples=packed & 0xF_FFFF_FFFF)


def _flac_frame_samples(data: bytes, pos: int, info: _StreamInfo, give_up: int) -> tuple[int, int]:
    """(samples, frames) over every frame header found from `pos` on, stopping past `give_up` samples.

    A FLAC frame does not say how long it is, so frames are found by their sync code and a header that
    agrees with STREAMINFO and passes its CRC-8; a chance match in compressed data is rarer than one in
    10**8 bytes. The frame numbers in the headers are ignored: decoders play frames however numbered.
    """
    samples = 0
    frames = 0
    # Compressed audio holds a false sync code about every 32 KiB; a file full of them is built to make
    # this loop slow, and is refused long before it could be.
    misses_left = 1024 + (len(data) - pos) // 1024
    for match in _FLAC_SYNC.finditer(data, pos):
        block_size = _flac_frame_block_size(data, match.start(), info)
        if block_size:
            samples += block_size
            frames += 1
            if samples > give_up:
                break
        else:
            misses_left -= 1
            if misses_left < 0:
                raise _damaged_audio("FLAC")
    return samples, frames


def _flac_frame_block_size(data: bytes, pos: int, info: _StreamInfo) -> int:
    """Samples per channel in the frame whose header would be at `pos`, or 0 if there is no header there."""
    if pos + 6 > len(data):
        return 0
    b2, b3 = data[pos + 2], data[pos + 3]
    size_code, rate_code = b2 >> 4, b2 & 0xF
    channel_code, bits_code = b3 >> 4, (b3 >> 1) & 0x7
    if size_code == 0 or rate_code == 15 or channel_code > 10 or b3 & 1:
        return 0
    if (channel_code + 1 if channel_code < 8 else 2) != info.channels:
        return 0
    if bits_code and _FLAC_BITS[bits_code] != info.bits:
        return 0
    # The frame or sample number, coded like UTF-8 in 1 to 7 bytes.
    leading_ones = 8 - (~data[pos + 4] & 0xFF).bit_length()
    if leading_ones in (1, 8):
        return 0
    at = pos + 4 + max(leading_ones, 1)
    if at + 5 > len(data) or any(byte & 0xC0 != 0x80 for byte in data[pos + 5 : at]):
        return 0
    if size_code == 1:
        block_size = 192
    elif size_code <= 5:
        block_size = 576 << (size_code - 2)
    elif size_code == 6:
        block_size, at = data[at] + 1, at + 1
    elif size_code == 7:
        block_size, at = int.from_bytes(data[at : at + 2], "big") + 1, at + 2
    else:
        block_size = 256 << (size_code - 8)
    if rate_code == 12:
        rate, at = data[at] * 1000, at + 1
    elif rate_code == 13:
        rate, at = int.from_bytes(data[at : at + 2], "big"), at + 2
    elif rate_code == 14:
        rate, at = int.from_bytes(data[at : at + 2], "big") * 10, at + 2
    else:
        rate = _FLAC_RATES[rate_code]
    if rate and rate != info.sample_rate:
        return 0
    if at >= len(data) or _crc8(data, pos, at) != data[at]:
        return 0
    return block_size


def _crc8(data: bytes, start: int, end: int) -> int:
    """FLAC's frame header CRC-8 (polynomial 0x07) over data[start:end]."""
    crc = 0
    for byte in data[start:end]:
        crc = _CRC8[crc ^ byte]
    return crc


# --- Ogg


def _ogg_to_flac(data: bytes, max_seconds: float, give_up_s: float) -> tuple[bytes, float]:
    """Decode an Ogg Vorbis/Opus file (a Discord voice message) to 16-bit FLAC: (FLAC bytes, seconds).

    The seconds are those decoded, stopping once past `give_up_s`; the FLAC holds them only if they are
    within `max_seconds`. What is uploaded is exactly what was measured, whatever the Ogg pages claim.
    """
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            if source.format != "OGG":
                raise _damaged_audio("OGG")
            rate: int = source.samplerate
            channels: int = source.channels
            keep = int(max_seconds * rate)
            out = io.BytesIO()
            decoded = 0
            with soundfile.SoundFile(
                out, mode="w", samplerate=rate, channels=channels, format="FLAC", subtype="PCM_16"
            ) as sink:
                while decoded <= give_up_s * rate:
                    block = source.read(rate, dtype="int16", always_2d=True)
                    if not len(block):
                        break
                    if decoded + len(block) <= keep:
                        sink.write(block)
                    decoded += len(block)
    except (RuntimeError, ValueError, TypeError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise _damaged_audio("OGG") from exc
    if decoded == 0:
        raise _no_sound("OGG")
    return out.getvalue(), decoded / rate
