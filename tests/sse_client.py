"""A small Server-Sent Events reader over aiohttp, for the dashboard tests (what EventSource does)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

Event = tuple[str, Any]


class SseClient:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.response: aiohttp.ClientResponse | None = None
        self.events: list[Event] = []  # everything read so far, in order

    async def open(self) -> SseClient:
        self.response = await self.session.get(
            self.url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
        )
        assert self.response.status == 200, self.response.status
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        return self

    def close(self) -> None:
        if self.response is not None:
            self.response.close()

    async def next(self, timeout: float = 10.0) -> Event:
        assert self.response is not None
        event, data = "message", []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readuntil(b"\n")
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        item = (event, json.loads("\n".join(data)))
                        self.events.append(item)
                        return item
                    event = "message"
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])

    async def until(self, match: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """Read until an event matches; the event, or TimeoutError listing what was read instead."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                item = await self.next(max(left, 0.001))
            except TimeoutError:
                seen = [e for e, _ in self.events[-20:]]
                raise TimeoutError(
                    f"no matching event in {timeout} s; last events: {seen} {self.events[-3:]}"
                ) from None
            if match(item):
                return item


def has_alert(seq: int) -> Callable[[Event], bool]:
    def match(item: Event) -> bool:
        event, data = item
        return event in ("alerts", "sync") and any(a["seq"] == seq for a in data["alerts"])

    return match


def stream_state(stream: str, state: str) -> Callable[[Event], bool]:
    def match(item: Event) -> bool:
        event, data = item
        status = data["status"] if event == "sync" else data if event == "status" else None
        return status is not None and status["streams"][stream]["state"] == state

    return match
