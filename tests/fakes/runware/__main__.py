"""`python -m tests.fakes.runware --port 0 --api-key k`: serve a fake Runware until killed, URL first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import tests.fakes.runware as package
from tests.fakes.runware.server import DEFAULT_API_KEY, FakeRunware


async def _serve(port: int, api_key: str, polls_to_finish: int) -> None:
    async with FakeRunware(port=port, api_key=api_key, polls_to_finish=polls_to_finish) as fake:
        print(fake.url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """Serve a fake Runware until killed; print its API URL first."""
    parser = argparse.ArgumentParser(description=package.__doc__.splitlines()[0] if package.__doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--polls-to-finish", type=int, default=2)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.api_key, args.polls_to_finish))


if __name__ == "__main__":
    main()
