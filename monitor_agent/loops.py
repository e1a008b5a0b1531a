"""The one way both packages end an event loop they run on a thread of their own."""

from __future__ import annotations

import asyncio

# nats-py starts tasks while it is being cancelled (a reconnect on the lost read, a close):
# a few rounds catch those too.
_ROUNDS = 3


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await every task still pending on `loop`, then close it, as asyncio.run does.

    A task left pending is finalized later by the garbage collector on a closed loop ("Task was
    destroyed but it is pending!", "Event loop is closed"), at any moment in any other code.
    """
    try:
        for _ in range(_ROUNDS):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
