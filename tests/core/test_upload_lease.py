"""The lease a new job's upload gets counts from when its row is written, not from when the command
began: a reservation waits for its guild's lock, and on a busy database (many commands at once in one
server) that wait can outlast a lease. The lease was stamped before the wait, so the row was born expired,
and another process's stale-upload sweep took the live upload for a dead process's and refunded it ("was
cancelled during its upload"; seen in tests/e2e/test_processes.py on a loaded machine, where a lease is
3 s)."""

from __future__ import annotations

import time
from typing import Any

from core.jobs import JobService
from core.models import Job, JobStatus
from core.ports import Store
from core.runner import UPLOAD_STALE_S, JobRunner
from tests.core.conftest import Rig, open_mixed, request

LEASE_S = 3.0


class SlowReservationSweptDuringUpload:
    """Mixed into a real store: the reservation waits (the fake clock moves on by several leases, as while
    other commands of its guild hold the lock) before it writes; then, while the upload runs, another
    process's runner sweeps the stale uploads (what it takes is kept in `swept`)."""

    clock: list[float]
    swept: list[Job]

    async def create_job_with_reservation(self, *args: Any, **options: Any) -> Any:
        self.clock[0] += 10 * LEASE_S
        return await super().create_job_with_reservation(*args, **options)  # type: ignore[misc]

    async def mark_job_queued(self, *args: Any, **options: Any) -> Any:
        now = self.clock[0] + 1.0  # a second into the upload
        self.swept += await self.claim_stale_uploads(  # type: ignore[attr-defined]
            "elsewhere:1:ffff", now, now - UPLOAD_STALE_S, now + LEASE_S
        )
        return await super().mark_job_queued(*args, **options)  # type: ignore[misc]


async def test_a_reservation_that_waited_still_holds_its_upload_for_a_whole_lease(rig: Rig) -> None:
    mixed = await open_mixed(rig.database, SlowReservationSweptDuringUpload)
    mixed.clock, mixed.swept = [time.time()], []
    store: Store = mixed  # type: ignore[assignment]
    try:
        clock = lambda: mixed.clock[0]  # noqa: E731
        runner = JobRunner(
            store, rig.client, rig.settings, on_finished=lambda job: None, clock=clock, lease_s=LEASE_S
        )
        service = JobService(store, rig.client, rig.settings, clock=clock, hold_upload=runner.lease)
        accepted = (await service.accept(request())).job
    finally:
        await store.close()
    assert mixed.swept == []
    assert accepted.status is JobStatus.QUEUED and accepted.lease_owner == runner.owner
    assert rig.spent() == accepted.estimate_micros  # reserved, not refunded
