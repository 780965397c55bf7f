"""The fake's CDN: attachments served at signed, expiring URLs, with download counts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import urllib.parse

from aiohttp import web

from tests.fakes.discord.protocol import Json
from tests.fakes.discord.records import FakeFile, _CdnEntry


class CdnMixin:
    """FakeDiscord's attachments and the CDN that serves them.

    Its state lives in FakeDiscord.__init__."""

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        ttl_s: float = 24 * 3600,
        *,
        channel_id: int = 0,
        width: int | None = None,
        height: int | None = None,
        duration_secs: float | None = None,
        waveform: str | None = None,
    ) -> Json:
        """Serve ``data`` on the CDN at a signed URL expiring in ``ttl_s``; return its attachment payload."""
        file = self._store_cdn(channel_id, filename, data, content_type, ttl_s)
        payload = self._attachment_payload(file)
        payload["ephemeral"] = True  # what Discord sends for a slash command option attachment
        extras = {"width": width, "height": height, "duration_secs": duration_secs, "waveform": waveform}
        payload.update({k: v for k, v in extras.items() if v is not None})
        return payload

    def expire_attachment(self, attachment_id: int | str) -> None:
        """Make an attachment's URLs answer 404 from now on, as after the ``ex`` time."""
        self._cdn[int(attachment_id)].expires_at = 0.0

    def downloads(self, attachment_id: int | str) -> int:
        """How many times an attachment was fetched successfully from the CDN."""
        return self.download_counts[int(attachment_id)]

    def _store_cdn(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None, ttl_s: float
    ) -> FakeFile:
        att_id = self.new_id()
        issued = int(time.time())
        expires = time.time() + ttl_s
        path = f"/attachments/{channel_id}/{att_id}/{filename}"  # signed as the server will see it
        query = f"ex={int(expires):x}&is={issued:x}&hm={self._sign(path, int(expires), issued)}&"
        quoted = f"/attachments/{channel_id}/{att_id}/{urllib.parse.quote(filename, safe='')}?{query}"
        file = FakeFile(
            id=att_id,
            filename=filename,
            data=data,
            content_type=content_type,
            url=f"{self.base_url}/cdn{quoted}",
            proxy_url=f"{self.base_url}/media{quoted}",
        )
        self._cdn[att_id] = _CdnEntry(file, expires)
        return file

    def _sign(self, path: str, ex: int, issued: int) -> str:
        return hmac.new(self._cdn_secret, f"{path}|{ex:x}|{issued:x}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _attachment_payload(file: FakeFile) -> Json:
        payload: Json = {
            "id": str(file.id),
            "filename": file.filename,
            "size": file.size,
            "url": file.url,
            "proxy_url": file.proxy_url,
        }
        if file.content_type is not None:
            payload["content_type"] = file.content_type
        return payload

    # ------------------------------------------------------------------ CDN

    async def _cdn_get(self, request: web.Request) -> web.Response:
        info = request.match_info
        entry = self._cdn.get(int(info["attachment_id"])) if info["attachment_id"].isdigit() else None
        q = request.query
        try:
            ex, issued = int(q["ex"], 16), int(q["is"], 16)
            path = f"/attachments/{info['channel_id']}/{info['attachment_id']}/{info['filename']}"
            signed = hmac.compare_digest(q["hm"], self._sign(path, ex, issued))
        except (KeyError, ValueError):
            signed = False
        if entry is None or not signed or time.time() > min(ex, entry.expires_at):
            return web.Response(status=404, text="This content is no longer available.")
        self.cdn_in_flight += 1
        self.cdn_max_in_flight = max(self.cdn_max_in_flight, self.cdn_in_flight)
        try:
            await asyncio.sleep(self.cdn_delay_s)
        finally:
            self.cdn_in_flight -= 1
        self.download_counts[entry.file.id] += 1
        ctype = entry.file.content_type or "application/octet-stream"
        return web.Response(body=entry.file.data, headers={"Content-Type": ctype})
