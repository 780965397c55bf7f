"""The bot's own small values in the store (StateStore)."""

from __future__ import annotations

from core.ports import Store


async def test_a_value_is_none_until_set_and_a_new_value_replaces_it(store: Store) -> None:
    """get_state answers None for an unknown key; set_state stores, then replaces."""
    assert await store.get_state("commands") is None
    await store.set_state("commands", "abc")
    await store.set_state("commands", "def")
    await store.set_state("other", "x")
    assert (await store.get_state("commands"), await store.get_state("other")) == ("def", "x")
