"""A limit on refused webhook calls per peer, so that guessing tokens cannot load the database.

Checking a token costs a database read (core/webhooks.py). Each peer (the TCP peer's address as aiohttp
sees it, `request.remote`; an IPv6 peer by its /64, the block one subscriber usually gets) has a token
bucket of REFUSALS_BURST refused (401) calls, refilled at REFUSALS_PER_S. A call takes one refusal from
its peer's bucket before its token is checked and gives it back when the token was right (or the check
did not happen), so calls in flight count too and a burst of concurrent wrong calls cannot overshoot.
With the bucket empty the call is answered 429 with Retry-After, without a database read, whatever its
token: a peer's own refusals limit only that peer, and a right token from any other peer is checked as
always. Behind a reverse proxy every call comes from the proxy's address, so the limit applies to the
proxy as a whole (README, Webhooks): polling remains the safety net for Runware's calls.

Memory is bounded: at most MAX_PEERS buckets, the least recently seen dropped first, and a bucket full
again after a give-back is dropped at once (a peer that only sends right tokens leaves nothing behind).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A peer may be refused this many times in a row before it is limited: far more than Runware can
# produce by mistake (a token it holds is known unless the job was pruned, long after it ended).
REFUSALS_BURST = 30
# Then one more check per second: a read a second per peer costs the database nothing noticeable.
REFUSALS_PER_S = 1.0
# Buckets kept at most (about 150 bytes each): random addresses cannot grow the table beyond this.
MAX_PEERS = 10_000
# The key of a call whose peer address aiohttp does not know (a UNIX socket, say).
UNKNOWN_PEER = "unknown"


def peer_key(remote: str | None) -> str:
    """The bucket a call's peer address belongs to: an IPv4 address as itself (an IPv4-mapped IPv6 one
    too), an IPv6 address by its /64 network."""
    if not remote:
        return UNKNOWN_PEER
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return UNKNOWN_PEER
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


@dataclass
class _Bucket:
    refusals: float  # refusals left, up to the burst
    at: float  # when `refusals` was last brought up to date
    limited: bool = False  # answered 429 since the bucket was last full (one WARNING per episode)


class RefusalLimit:
    """Token buckets of refused calls per peer (see the module's docstring). `clock`: seconds, monotonic."""

    def __init__(
        self,
        *,
        burst: int = REFUSALS_BURST,
        per_s: float = REFUSALS_PER_S,
        max_peers: int = MAX_PEERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_s <= 0 or max_peers < 1:
            raise ValueError("burst and max_peers must be at least 1, per_s above 0")
        self.burst = burst
        self.per_s = per_s
        self.max_peers = max_peers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        """The peers tracked now."""
        return len(self._buckets)

    def __contains__(self, peer: object) -> bool:
        """Whether `peer` has a bucket now."""
        return peer in self._buckets

    def take(self, peer: str) -> float:
        """Before a call's token is checked: 0 when it may be checked (one refusal is held for it until
        `give_back`), else the seconds until its peer may try again (answer 429, read nothing)."""
        now = self._clock()
        bucket = self._buckets.get(peer)
        if bucket is None:
            while len(self._buckets) >= self.max_peers:
                self._buckets.popitem(last=False)
            bucket = self._buckets[peer] = _Bucket(float(self.burst), now)
        else:
            self._refill(bucket, now)
            self._buckets.move_to_end(peer)
            if bucket.refusals >= self.burst:  # the peer stopped long enough: a new episode may start
                bucket.limited = False
        if bucket.refusals >= 1:
            bucket.refusals -= 1
            return 0.0
        if not bucket.limited:
            bucket.limited = True
            log.warning(
                "webhook: %s was refused %d times; its calls are answered 429 without a database read, "
                "one more check allowed every %.3g s",
                peer,
                self.burst,
                1 / self.per_s,
            )
        return (1 - bucket.refusals) / self.per_s

    def give_back(self, peer: str) -> None:
        """The call `take` let through was not refused (its token was right, or it could not be checked)."""
        bucket = self._buckets.get(peer)
        if bucket is None:  # dropped meanwhile: nothing held any more
            return
        self._refill(bucket, self._clock())
        bucket.refusals = min(float(self.burst), bucket.refusals + 1)
        if bucket.refusals >= self.burst:
            del self._buckets[peer]

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.at)
        bucket.refusals = min(float(self.burst), bucket.refusals + elapsed * self.per_s)
        bucket.at = now


def retry_after(seconds: float) -> str:
    """The Retry-After header's value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
