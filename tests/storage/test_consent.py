"""Consent in the store (ConsentStore): accepted versions and requests waiting for an answer."""

from __future__ import annotations

import pytest

from core.models import (
    ConsentRequest,
    ConsentState,
)
from core.ports import Store
from tests.storage.builders import (
    NOW,
    ask,
    audit,
    submission,
)
from tests.storage.conftest import Query


async def test_no_consent_version_before_any_accept(store: Store) -> None:
    """A member who never accepted has no version."""
    assert await store.consent_version(1, 7) is None


async def test_a_consent_request_reads_back_as_it_was_stored(store: Store) -> None:
    """Every field survives the round trip; the id is assigned by the store."""
    first = await ask(store)
    second = await ask(store, user_id=8)
    assert first.id > 0 and second.id == first.id + 1
    assert await store.get_consent_request(first.id) == first
    again = await store.get_consent_request(first.id)
    assert again is not None and again.submission == submission()
    assert again.submission.role_ids == (31, 32) and again.submission.channel_nsfw is True
    assert (again.version, again.created_at, again.expires_at) == (2, NOW, NOW + 600)
    assert again.state is ConsentState.OPEN
    assert await store.get_consent_request(first.id + 99) is None


async def test_accept_records_the_version_and_closes_the_request(store: Store, query: Query) -> None:
    """Accept stores the member's consent to the request's version and closes the request (state and
    time); the submission is kept as it was, and handed back to go ahead with."""
    request = await ask(store, version=2)
    decided = await store.decide_consent_request(request.id, ConsentState.ACCEPTED, NOW + 30)
    assert isinstance(decided, ConsentRequest)
    assert decided.submission == submission()
    assert await store.consent_version(1, 7) == 2
    assert await store.consent_version(2, 7) is None  # consent is per guild
    assert query("SELECT guild_id, user_id, version, accepted_at FROM consents") == [(1, 7, 2, NOW + 30)]
    assert query("SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("accepted", NOW + 30)
    ]
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.ACCEPTED
    assert stored.submission == submission()
    assert [(a, action) for _, a, action, _, _ in audit(query)] == [(7, "consent.accept")]


async def test_a_second_decision_returns_the_state_it_already_has(store: Store) -> None:
    """Once accepted, accepting or declining again changes nothing and says 'accepted'."""
    request = await ask(store)
    decide = store.decide_consent_request
    assert isinstance(await decide(request.id, ConsentState.ACCEPTED, NOW), ConsentRequest)
    assert await decide(request.id, ConsentState.ACCEPTED, NOW + 1) is ConsentState.ACCEPTED
    assert await decide(request.id, ConsentState.DECLINED, NOW + 2) is ConsentState.ACCEPTED
    stored = await store.get_consent_request(request.id)
    assert stored is not None and stored.state is ConsentState.ACCEPTED


async def test_a_decision_after_expiry_is_expired_and_records_no_consent(store: Store, query: Query) -> None:
    """Accept after expires_at closes the request as expired; the member has not consented."""
    request = await ask(store, ttl=600)
    result = await store.decide_consent_request(request.id, ConsentState.ACCEPTED, NOW + 601)
    assert result is ConsentState.EXPIRED
    assert await store.consent_version(1, 7) is None
    assert query("SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("expired", NOW + 601)
    ]
    assert query("SELECT COUNT(*) FROM consents") == [(0,)]
    assert audit(query) == []


async def test_declining_records_no_consent(store: Store, query: Query) -> None:
    """Decline closes the request (state and time recorded) without consent."""
    request = await ask(store)
    decided = await store.decide_consent_request(request.id, ConsentState.DECLINED, NOW + 5)
    assert isinstance(decided, ConsentRequest) and decided.id == request.id
    assert await store.consent_version(1, 7) is None
    assert query("SELECT state, decided_at FROM consent_requests WHERE id = ?", (request.id,)) == [
        ("declined", NOW + 5)
    ]
    assert audit(query) == []


async def test_a_newer_version_replaces_the_older_consent(store: Store, query: Query) -> None:
    """Accepting version 3 after version 2 leaves one row: version 3, accepted then."""
    await store.decide_consent_request((await ask(store, version=2)).id, ConsentState.ACCEPTED, NOW)
    later = NOW + 86_400
    await store.decide_consent_request((await ask(store, later, version=3)).id, ConsentState.ACCEPTED, later)
    assert await store.consent_version(1, 7) == 3
    assert query("SELECT version, accepted_at FROM consents") == [(3, later)]


async def test_an_older_statement_accepted_late_never_lowers_the_consent(store: Store, query: Query) -> None:
    """A request asked under version 2, accepted after version 3 was: the member's consent stays at 3."""
    old = await ask(store, version=2)
    await store.decide_consent_request((await ask(store, version=3)).id, ConsentState.ACCEPTED, NOW + 1)
    await store.decide_consent_request(old.id, ConsentState.ACCEPTED, NOW + 2)
    assert await store.consent_version(1, 7) == 3
    assert query("SELECT version, accepted_at FROM consents") == [(3, NOW + 1)]


async def test_deciding_an_unknown_request_raises(store: Store) -> None:
    """There is nothing to decide on a request that does not exist."""
    with pytest.raises(KeyError):
        await store.decide_consent_request(404, ConsentState.ACCEPTED, NOW)
