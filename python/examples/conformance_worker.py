"""The Python conformance worker: the calls of tests/conformance/SPEC.md.

Run by tests/tests/conformance.rs as ``python3 python/examples/conformance_worker.py``
in a pool with the JSON codec, over the socketpair or over stdio.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lpm_worker import Streamed, Worker, current_request  # noqa: E402

worker = Worker()
remembered = None

# 261 periods of 251 bytes: every block starts at a multiple of 251.
BLOCK = bytes(range(251)) * 261


@worker.handle("echo")
async def echo(value):
    return value


@worker.handle("add")
async def add(args):
    return args["a"] + args["b"]


@worker.handle("fail")
async def fail(args):
    raise RuntimeError(args["message"])


@worker.handle("crash_once")
async def crash_once(args):
    marker = args["marker"]
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(3)
    return "survived"


@worker.handle("sleep")
async def sleep(args):
    ms = args["ms"]
    try:
        await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        worker.emit_nowait("cancelled", ms)
        raise
    return ms


@worker.handle("busy")
async def busy(args):
    ms = args["ms"]
    worker.busy()
    await asyncio.sleep(ms / 1000)
    worker.ready()
    return ms


@worker.handle("ask")
async def ask(args):
    return await worker.emit("question", args["question"], reply=True)


@worker.handle("recall")
async def recall(_value):
    return remembered


@worker.handle("report")
async def report(args):
    worker.report_stats({args["name"]: args["value"]})


@worker.handle("stream")
async def stream(args):
    size = args["bytes"]

    def blocks():
        left = size
        while left > 0:
            block = BLOCK if left >= len(BLOCK) else BLOCK[:left]
            left -= len(block)
            yield block

    return Streamed(size, blocks())


@worker.handle("slot")
async def slot(_value):
    return {"pid": os.getpid(), "slot": worker.slot}


@worker.handle("trace")
async def trace(_value):
    return current_request().trace


@worker.on_event("remember")
def remember(value):
    global remembered
    remembered = value


@worker.on_soft_kill
async def goodbye():
    await worker.emit("goodbye", None)


if __name__ == "__main__":
    worker.run()
