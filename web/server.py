"""The bot's HTTP server: aiohttp.web on the bot's event loop, on HTTP_HOST:HTTP_PORT.

Routes are added to `app` by the parts that own them (health, metrics, Runware's webhook) before `start()`.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)

# The largest request body any route accepts (Runware's webhook bodies are a few hundred bytes; a route
# that needs less checks its own cap first).
MAX_BODY_BYTES = 64 * 1024


class HttpServerError(RuntimeError):
    """The server could not start (the port is taken, the host is not this machine's)."""


class HttpServer:
    """One aiohttp.web application served on `host`:`port` (0 picks a free port; `port` then tells)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL of the running server, as this machine reaches it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Listen (once: a second call does nothing). Raises HttpServerError (with the address, never a
        secret) when it cannot."""
        if self._runner is not None:
            return
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, shutdown_timeout=1.0)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise HttpServerError(
                f"cannot listen on {self.host}:{self.port} ({error.strerror or error}); "
                "choose another HTTP_PORT or HTTP_HOST"
            ) from None
        self._runner = runner
        if self.port == 0:
            server = site._server  # aiohttp keeps the bound socket here; the only way to learn port 0's pick
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        log.info("HTTP server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and finish the requests in progress (briefly)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
