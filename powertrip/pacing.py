"""Slack allows about one `chat.postMessage` per second per channel. A burst (many reminders due
at once, many DMs) is spread out here, in the worker, instead of being answered with 429s.

A post whose turn is more than `defer_after` seconds away does not wait for it in the worker
(where it would hold one of the worker's activity slots, and its start-to-close timeout would
run): the pacer reserves its turn and raises `Deferred`, and the activity asks Temporal to retry
it then (issue 16: at more than one post a second every slot filled with posts waiting their
turn, and the DMs and the digest waited behind them). The retried attempt, known by its `key`,
comes back at its own reserved time, not all at once with the others.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

DEFER_AFTER = 2.0
"""Seconds: a longer wait for a channel's turn is deferred to Temporal, a shorter one waited."""
KEEP_FOR = 600.0
"""Seconds a reservation is kept past its time for an attempt that comes back late (a worker
whose activity tasks wait); then it is forgotten (the workflow ended, the retry went to another
worker), and an attempt that still comes back is booked at the end of the queue."""


class Deferred(Exception):
    """The post's turn is `delay` seconds away; its reservation is kept for its key."""

    def __init__(self, channel: str, delay: float) -> None:
        super().__init__(f"{channel}'s turn in {delay:.1f}s")
        self.channel = channel
        self.delay = delay


class ChannelPacer:
    """Turns to post to each channel, `interval` seconds apart (0: no pacing), one pacer per
    worker. Each post books the next free turn of its channel (a queue per channel, in order of
    arrival); the real posts also go through a lock per channel that keeps them at least
    `interval` apart, whenever their attempts actually arrive. Times are `clock()` seconds."""

    def __init__(
        self,
        interval: float = 1.0,
        defer_after: float = DEFER_AFTER,
        keep_for: float = KEEP_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.defer_after = defer_after
        self.keep_for = keep_for
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}
        """When the last post to each channel was made."""
        self._booked: dict[str, float] = {}
        """Per channel, when the next free turn begins (the end of its queue)."""
        self._reserved: defaultdict[str, dict[str, float]] = defaultdict(dict)
        """Per channel, the turns of deferred posts by key, until their attempt posts."""
        self._pruned = float("-inf")

    def reserved(self, channel: str, key: str) -> bool:
        """Whether `key` holds a turn on `channel`: its earlier attempts were deferred here and
        none of them posted."""
        return key in self._reserved.get(channel, {})

    def reservations(self) -> int:
        """How many turns are reserved, over all channels (what the pacer remembers)."""
        return sum(len(r) for r in self._reserved.values())

    @asynccontextmanager
    async def turn(
        self,
        channel: str,
        key: str | None = None,
        *,
        first: bool = False,
        deadline: float | None = None,
    ) -> AsyncIterator[None]:
        """Wait until `channel` may be posted to again, then post inside the block; posts to
        other channels do not wait.

        `key` names one post across its attempts (e.g. the activity's workflow id and activity
        id): with one, a turn more than `defer_after` seconds away raises `Deferred` instead of
        waiting, and the turn is kept for the key's next attempt (which raises `Deferred` again
        if it comes back early, and posts at once if late). Without one the post waits for its
        turn however long. `first`: take the next turn, ahead of every reserved one, never
        deferred (a digest, the one post that saves many). `deadline` (a `clock()` time): a post
        that must be made by then is not booked later, but squeezed in at the deadline."""
        if self.interval <= 0:
            yield
            return
        now = self.clock()
        self._prune(now)
        at = self._reserved.get(channel, {}).get(key) if key is not None else None
        if at is None:
            at = self._book(channel, now, first, deadline)
            if key is not None and at - now > self.defer_after:
                self._reserved[channel][key] = at
        if key is not None and at - now > self.defer_after:
            raise Deferred(channel, at - now)
        if at > now:
            await asyncio.sleep(at - now)  # a short wait, outside the lock: others may post
        async with self._locks[channel]:
            wait = self._last.get(channel, float("-inf")) + self.interval - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            if key is not None and channel in self._reserved:
                # Posting now: a retry after this attempt is a post of its own again.
                self._reserved[channel].pop(key, None)
            try:
                yield
            finally:
                self._last[channel] = self.clock()

    def _book(self, channel: str, now: float, first: bool, deadline: float | None) -> float:
        """The turn of a new post to `channel`; the queue grows by one turn whichever it is."""
        end = max(now, self._booked.get(channel, now))
        self._booked[channel] = end + self.interval
        if first:
            return now
        if deadline is not None and end > deadline:
            return max(now, deadline)
        return end

    def _prune(self, now: float) -> None:
        """Forget reservations `keep_for` past their time, and channels idle that long (a DM's
        channel is a user's), at most every `keep_for / 10` seconds."""
        if now - self._pruned < self.keep_for / 10:
            return
        self._pruned = now
        expired = now - self.keep_for
        for channel, reserved in list(self._reserved.items()):
            for key in [k for k, at in reserved.items() if at < expired]:
                del reserved[key]
            if not reserved:
                del self._reserved[channel]
        # A queue that ended before now is no queue: `_book` starts from now.
        for channel in [c for c, end in self._booked.items() if end <= now]:
            del self._booked[channel]
        for channel in [c for c, at in self._last.items() if at < expired]:
            if self._locks[channel].locked():
                continue
            del self._last[channel]
            del self._locks[channel]
