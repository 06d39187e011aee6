"""Workers as child processes over the stdio transport, driven by a scripted supervisor.

Run from the repository root: ``python3 -m unittest discover -s python/tests``.
Each test starts a real ``python3`` process without ``LPM_IPC_FD``, so the
library takes its stdin and stdout for the channel.
"""

import asyncio
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import supervisor as sv  # noqa: E402

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFORMANCE = os.path.join(PYTHON_DIR, "examples", "conformance_worker.py")

# A worker that prints to stdout once it claimed the channel. (A print before
# Worker() would go into the channel: the README says to create it first.)
PRINTER = f"""
import sys
sys.path.insert(0, {PYTHON_DIR!r})
from lpm_worker import Worker
worker = Worker()
print("after the worker")

@worker.handle("shout")
def shout(text):
    print("in the handler", text)
    return text.upper()

worker.run()
"""


class Stdio(unittest.IsolatedAsyncioTestCase):
    async def spawn(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LPM_")}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        self.sup = sv.Supervisor(self.proc.stdout, self.proc.stdin)
        await self.sup.send(sv.hello(slot=3))
        hello = await self.sup.expect("Hello")
        self.assertEqual(hello[1], 4)
        self.assertEqual(hello[2], self.proc.pid)
        self.assertFalse(hello[5], "takes_fds is false")
        await self.sup.expect("Ready")
        return hello

    async def exit_code(self):
        return await asyncio.wait_for(self.proc.wait(), sv.DEADLINE)

    async def asyncTearDown(self):
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def call(self, call, value):
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, call, value))
        return await self.sup.expect("Response", "Failed", "NotHandled")

    async def test_prints_go_to_stderr_and_never_into_the_frames(self):
        hello = await self.spawn("-c", PRINTER)
        self.assertEqual(hello[4], ["shout"])
        answer = await self.call(1, "hi")
        self.assertEqual(answer[2], b'"HI"')
        await self.sup.send(sv.SOFT_KILL)
        await self.sup.expect("SoftKillDone")
        self.assertEqual(await self.exit_code(), 0)
        stderr = (await self.proc.stderr.read()).decode()
        for line in ("after the worker", "in the handler hi"):
            self.assertIn(line, stderr)

    async def test_conformance_calls_a_16_mib_stream_and_soft_kill(self):
        hello = await self.spawn(CONFORMANCE)
        calls = {name: n for n, name in enumerate(hello[4], start=1)}
        self.assertEqual((await self.call(calls["add"], {"a": 1, "b": 2}))[2], b"3")
        slot = await self.call(calls["slot"], None)
        self.assertEqual(slot[2], f'{{"pid":{self.proc.pid},"slot":3}}'.encode())
        size = 16 * 1024 * 1024
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, calls["stream"], {"bytes": size}))
        streamed = await self.sup.expect("ResponseStreamed")
        self.assertEqual(streamed, ("ResponseStreamed", rid, str(size).encode()))
        received = 0
        outstanding = 0
        pattern = bytes(range(251)) * 600
        while True:
            message = await self.sup.expect("StreamData", "StreamEnd")
            if message[0] == "StreamEnd":
                break
            data = message[2]
            offset = received % 251
            self.assertEqual(data, pattern[offset : offset + len(data)])
            received += len(data)
            outstanding += len(data)
            if outstanding >= 64 * 1024:
                await self.sup.send(sv.stream_credit(rid, outstanding))
                outstanding = 0
        self.assertEqual(message, ("StreamEnd", rid, (True, size)))
        self.assertEqual(received, size)
        await self.sup.send(sv.SOFT_KILL)
        self.assertEqual(await self.sup.expect("Emit"), ("Emit", "goodbye", b"null", None))
        await self.sup.expect("SoftKillDone")
        self.assertEqual(await self.exit_code(), 0)

    async def test_end_of_file_ends_a_worker_whose_handler_sleeps(self):
        hello = await self.spawn(CONFORMANCE)
        sleep = hello[4].index("sleep") + 1
        await self.sup.send(sv.request(sv.new_id(), sleep, {"ms": 600_000}), sv.ping(9))
        self.assertEqual(await self.sup.recv(), ("Pong", 9))
        self.proc.stdin.close()
        self.assertEqual(await self.exit_code(), 0)

    async def test_hard_kill_exits_at_once_and_a_crash_exits_with_3(self):
        hello = await self.spawn(CONFORMANCE)
        with tempfile.TemporaryDirectory() as dir:
            crash = hello[4].index("crash_once") + 1
            await self.sup.send(sv.request(sv.new_id(), crash, {"marker": os.path.join(dir, "m")}))
            self.assertEqual(await self.exit_code(), 3)
        hello = await self.spawn(CONFORMANCE)
        sleep = hello[4].index("sleep") + 1
        await self.sup.send(sv.request(sv.new_id(), sleep, {"ms": 600_000}), sv.HARD_KILL)
        self.assertEqual(await self.exit_code(), 0)

    async def test_a_postcard_pool_is_refused_with_a_message(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LPM_")}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, CONFORMANCE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        sup = sv.Supervisor(self.proc.stdout, self.proc.stdin)
        await sup.send(sv.hello(codec=0))
        await sup.expect("Hello")
        self.assertEqual(await self.exit_code(), 1)
        stderr = (await self.proc.stderr.read()).decode()
        self.assertIn("codec is postcard", stderr)


if __name__ == "__main__":
    unittest.main()
