"""The item cap counts UTF-8 bytes exactly, whether a fragment is ASCII or not."""

from __future__ import annotations

import pytest

from cupola.models.base import TextDelta, ToolCallDelta
from cupola.runtime.loop import ItemCap, ItemTooLarge


def test_ascii_text_is_counted_by_length_up_to_the_cap() -> None:
    cap = ItemCap(10)
    assert cap.text(TextDelta("12345")).text == "12345"
    cap.text(TextDelta("67890"))  # exactly 10 bytes: still within
    with pytest.raises(ItemTooLarge):
        cap.text(TextDelta("!"))


def test_non_ascii_text_is_counted_in_bytes() -> None:
    cap = ItemCap(10)
    cap.text(TextDelta("é" * 5))  # 10 bytes in 5 characters
    with pytest.raises(ItemTooLarge):
        cap.text(TextDelta("a"))
    emoji = ItemCap(8)
    emoji.text(TextDelta("😀😀"))  # 8 bytes
    with pytest.raises(ItemTooLarge):
        emoji.text(TextDelta("😀"))


def test_nul_becomes_replacement_character_and_is_counted_as_such() -> None:
    cap = ItemCap(6)
    assert cap.text(TextDelta("a\x00b")).text == "a\ufffdb"  # 5 bytes
    with pytest.raises(ItemTooLarge):
        cap.text(TextDelta("cd"))


def test_call_arguments_count_per_call_and_a_call_closes_the_message() -> None:
    cap = ItemCap(10)
    cap.text(TextDelta("1234567"))
    cap.call(ToolCallDelta(0, "c0", "f", '{"a":'))
    cap.call(ToolCallDelta(1, "c1", "g", '{"a":'))
    cap.call(ToolCallDelta(0, arguments='"é"}'))  # call 0: 5 + 5 bytes
    cap.text(TextDelta("1234567890"))  # a new message after the calls
    with pytest.raises(ItemTooLarge):
        cap.call(ToolCallDelta(0, arguments=" "))
    with pytest.raises(ItemTooLarge):  # 10 characters, 12 bytes
        ItemCap(11).call(ToolCallDelta(0, "c", "f", '{"a":"éé"}'))
