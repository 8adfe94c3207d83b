"""The server-sent events reader the HTTP adapters share: any split of the body, any line end."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cupola.models.http import sse_events

BODY = (
    b": keep-alive comment\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"id: 7\nretry: 100\n\n"  # an event without data: nothing to hand on
    b"data: first line\ndata: second line\n\n"
    b"data:no space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [b'{"a": 1}', b"first line\nsecond line", b"no space", b"[DONE]"]


async def chunks(body: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in [*cuts, len(body)]:
        yield body[start:cut]
        start = cut


async def read(body: bytes, cuts: list[int]) -> list[bytes]:
    return [data async for data in sse_events(chunks(body, cuts))]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
async def test_every_split_of_the_body_gives_the_same_events(line_end: bytes) -> None:
    body = BODY.replace(b"\n", line_end)
    assert await read(body, []) == EXPECTED
    for cut in range(1, len(body)):  # one split anywhere, a CRLF cut in half included
        assert await read(body, [cut]) == EXPECTED, cut
    assert await read(body, list(range(1, len(body)))) == EXPECTED  # a byte at a time


async def test_an_event_is_handed_on_when_its_blank_line_arrives() -> None:
    seen: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"data: one\n\ndata: tw"
        assert seen == [b"one"]  # read before the rest of the body arrives
        yield b"o\n\n"

    async for data in sse_events(body()):
        seen.append(data)
    assert seen == [b"one", b"two"]


async def test_a_body_that_ends_without_its_last_blank_line() -> None:
    assert await read(b"data: one\n\ndata: last\n", []) == [b"one", b"last"]
