"""One OS process of a concurrency test: open the store of a database URL (storage's `open_store`, as the
bot does), say "ready", wait for "go" on stdin (the test's start signal, sent to every process at once),
then make COUNT reservations of ESTIMATE micro-dollars at once for one member of one guild against a
daily limit of LIMIT micro-dollars, and print the outcome as one JSON line: the ids of the jobs accepted
and the reasons of the refusals.

    python -m tests.storage.reserving_process URL COUNT ESTIMATE LIMIT   (from the project's root)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

from core.models import Job, Limits, NewJob, QuotaRefusal
from core.quota import check_limits, windows_at
from storage import open_store

GUILD_ID = 1
USER_ID = 7


async def main(url: str, count: int, estimate: int, limit: int) -> None:
    async with open_store(url) as store:
        print("ready", flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        assert go.strip() == "go", go
        now = time.time()
        limits = Limits(limit, None)

        async def reserve() -> Job | QuotaRefusal:
            new = NewJob(str(uuid.uuid4()), GUILD_ID, 10, USER_ID, 1.0, estimate, "MP4", 85, None, False)
            return await store.create_job_with_reservation(
                new, limits, now, windows_at(now), lambda usage: check_limits(usage, estimate, now)
            )

        results = await asyncio.gather(*(reserve() for _ in range(count)))
    accepted = [r.id for r in results if isinstance(r, Job)]
    refused = [r.reason.value for r in results if isinstance(r, QuotaRefusal)]
    print(json.dumps({"accepted": accepted, "refused": refused}), flush=True)


if __name__ == "__main__":
    url, count, estimate, limit = sys.argv[1], *map(int, sys.argv[2:5])
    asyncio.run(main(url, count, estimate, limit))
