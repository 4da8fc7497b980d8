"""CPU-bound work of a request (decoding a body, parsing its records, matching rules), run off the
event loop: a 5 MB body of 10,000 lines takes seconds of pure Python, and meanwhile the same
loop must answer Slack interactions (Slack gives up after 3 s), health checks and other senders.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Threads share the interpreter lock, so more of them do not parse faster; a few let a small
# request's parsing start while a big one's runs. Calls beyond them queue in the pool, not on
# the event loop.
CPU_THREADS = 4
_POOL = ThreadPoolExecutor(max_workers=CPU_THREADS, thread_name_prefix="powertrip-cpu")


async def off_loop(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)` on one of `CPU_THREADS` threads, with the caller's context
    variables; its result, or its exception raised here. `call` must not touch the event
    loop (it is pure work: parsing, matching, shaping, logging)."""
    context = contextvars.copy_context()
    bound = functools.partial(context.run, call, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_POOL, bound)
