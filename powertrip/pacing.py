"""Slack allows about one `chat.postMessage` per second per channel. A burst (many reminders due
at once, many DMs) is spread out here, in the worker, instead of being answered with 429s."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ChannelPacer:
    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}

    @asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        """Wait until `channel` may be posted to again; posts to other channels do not wait."""
        if self.interval <= 0:
            yield
            return
        async with self._locks[channel]:
            wait = self._last.get(channel, float("-inf")) + self.interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[channel] = time.monotonic()
