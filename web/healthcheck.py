"""`python -m web.healthcheck`: the container's HEALTHCHECK (the slim image has no curl). Standard library
only, so it starts in a few tens of milliseconds and needs nothing the bot's settings need.

Exit 0 when GET /healthz on this machine answers 200, 1 otherwise (503, no answer, a timeout). With
HTTP_PORT unset, empty or 0 there is no server to ask (or no way to know its port): exit 0, so an operator
who turns the server off does not get a container marked unhealthy forever. HTTP_HOST 0.0.0.0 or :: (every
address) is reached on loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

TIMEOUT_S = 4.0


def health_url(env: Mapping[str, str]) -> str | None:
    """The /healthz URL of the server these settings describe, or None when it is off."""
    port = env.get("HTTP_PORT", "").strip()
    if port in ("", "0"):
        return None
    host = env.get("HTTP_HOST", "").strip() or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main(env: Mapping[str, str] = os.environ) -> int:
    """Ask /healthz once; print one line; the exit status."""
    url = health_url(env)
    if url is None:
        print("HTTP server off (HTTP_PORT unset): nothing to check")
        return 0
    # No proxy: Docker hands its configured proxies to containers (HTTP_PROXY), and this server is local.
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=TIMEOUT_S) as response:
            print(f"{response.status} {response.read(1024).decode(errors='replace')}")
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        print(f"{error.code} {error.read(1024).decode(errors='replace')}")
    except (OSError, ValueError) as error:
        print(f"no answer from {url}: {type(error).__name__}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
