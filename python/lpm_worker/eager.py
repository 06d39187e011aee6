"""Start a request's coroutine at once, and make it a task only if it waits.

Most handlers of small calls finish without ever waiting. Run eagerly,
their answer leaves with the other answers of the same read, with no task
to create and no extra turn of the event loop (asyncio 3.12 has eager
tasks; this library supports 3.9).

Each step of the coroutine runs in the request's own ``contextvars``
context, so ``current_request()`` never leaks into the event loop's.
"""

import types


def start(loop, coro, context):
    """Runs ``coro`` to its first wait: ``None`` if it finished, else the task that carries on."""
    try:
        first = context.run(coro.send, None)
    except StopIteration:
        return None
    return loop.create_task(_carry_on(coro, first, context))


async def _carry_on(coro, waiting_on, context):
    # Tasks take native coroutines only (3.12 and later): this one delegates.
    return await _resume(coro, waiting_on, context)


@types.coroutine
def _resume(coro, waiting_on, context):
    # A hand-written `yield from`: the task sees what the coroutine yielded
    # (the future it waits on), and sends or throws the outcome back.
    while True:
        try:
            sent = yield waiting_on
        except BaseException as e:  # the task's cancellation, or the awaited future's error
            step, arg = coro.throw, e
        else:
            step, arg = coro.send, sent
        try:
            waiting_on = context.run(step, arg)
        except StopIteration as done:
            return done.value
