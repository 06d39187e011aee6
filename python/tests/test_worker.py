"""The worker's session, driven in-process by a scripted supervisor over a socketpair.

Run from the repository root: ``python3 -m unittest discover -s python/tests``.
The Rust conformance suite (tests/tests/conformance.rs) runs the same
behaviours against a real supervisor.
"""

import asyncio
import json
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import supervisor as sv  # noqa: E402

from lpm_worker import (  # noqa: E402
    EOF,
    HARD_KILL,
    SOFT_KILL,
    HandshakeError,
    Streamed,
    Worker,
    current_request,
)


def make_worker():
    ours, theirs = socket.socketpair()
    worker = Worker(channel=ours)
    return worker, theirs


class Session(unittest.IsolatedAsyncioTestCase):
    """Each test registers handlers, starts the worker and plays the supervisor."""

    async def start(self, worker, theirs, slot=0):
        self.serving = asyncio.get_running_loop().create_task(worker.serve())
        self.sup = await sv.Supervisor.connect(theirs)
        await self.sup.send(sv.hello(slot=slot))
        hello = await self.sup.expect("Hello")
        await self.sup.expect("Ready")
        return hello

    async def ended(self):
        return await asyncio.wait_for(self.serving, sv.DEADLINE)

    async def asyncTearDown(self):
        if hasattr(self, "sup"):
            self.sup.close()
        if hasattr(self, "serving") and not self.serving.done():
            await asyncio.wait_for(self.serving, sv.DEADLINE)

    async def test_hello_lists_the_calls_in_order_and_requests_are_routed_by_number(self):
        worker, theirs = make_worker()

        @worker.handle("add")
        async def add(args):
            return args["a"] + args["b"]

        @worker.handle("name")
        def name(_value):
            return current_request().call

        @worker.on_request
        async def untyped(value):
            return ["untyped", value, current_request().slot]

        hello = await self.start(worker, theirs, slot=7)
        self.assertEqual(hello[1:3], (4, os.getpid()))
        self.assertEqual(hello[3:], (1, ["add", "name"], False))
        a, b, c, d = sv.new_id(), sv.new_id(), sv.new_id(), sv.new_id()
        await self.sup.send(
            sv.request(a, 1, {"a": 2, "b": 3}),
            sv.request(b, 2, None),
            sv.request(c, 0, "x"),
            sv.request(d, 3, None),
        )
        answers = {}
        for _ in range(4):
            message = await self.sup.recv()
            answers[message[1]] = message
        self.assertEqual(answers[a], ("Response", a, b"5"))
        self.assertEqual(answers[b], ("Response", b, b'"name"'))
        self.assertEqual(json.loads(answers[c][2]), ["untyped", "x", 7])
        self.assertEqual(answers[d], ("NotHandled", d))
        self.sup.close()
        self.assertEqual(await self.ended(), EOF)

    async def test_each_request_sees_its_own_context_and_the_loop_none(self):
        worker, theirs = make_worker()
        seen = []

        @worker.handle("at_once")
        async def at_once(value):
            seen.append((value, current_request().call))
            return value

        @worker.handle("after_a_wait")
        async def after_a_wait(value):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            return [value, current_request().call]

        @worker.on_event("probe")
        def probe(_value):
            # Runs on the reader's callback, where the requests above were started.
            seen.append(("probe", current_request()))

        await self.start(worker, theirs)
        a, b = sv.new_id(), sv.new_id()
        await self.sup.send(sv.request(a, 2, "b"), sv.request(b, 1, "a"), sv.event("probe", None))
        answers = {}
        for _ in range(2):
            message = await self.sup.expect("Response")
            answers[message[1]] = json.loads(message[2])
        self.assertEqual(answers, {a: ["b", "after_a_wait"], b: "a"})
        self.assertEqual(seen, [("a", "at_once"), ("probe", None)])

    async def test_a_handler_error_fails_its_request_with_the_message(self):
        worker, theirs = make_worker()

        @worker.handle("fail")
        async def fail(args):
            raise RuntimeError(args["message"])

        @worker.handle("nan")
        async def nan(_value):
            return float("nan")

        await self.start(worker, theirs)
        a, b, c = sv.new_id(), sv.new_id(), sv.new_id()
        await self.sup.send(sv.request(a, 1, {"message": "boom"}))
        self.assertEqual(await self.sup.recv(), ("Failed", a, "boom"))
        await self.sup.send(sv.request(b, 1, payload=b"{not json"))
        failed = await self.sup.expect("Failed")
        self.assertIn("not JSON", failed[2])
        await self.sup.send(sv.request(c, 2, None))
        failed = await self.sup.expect("Failed")
        self.assertIn("Out of range float", failed[2])

    async def test_ping_is_answered_while_handlers_sleep_and_block(self):
        worker, theirs = make_worker()
        release = threading.Event()

        @worker.handle("sleep")
        async def sleep(_value):
            await asyncio.sleep(3600)

        @worker.handle("block")
        def block(_value):
            release.wait()
            return "released"

        await self.start(worker, theirs)
        slow, blocked = sv.new_id(), sv.new_id()
        await self.sup.send(sv.request(slow, 1, None), sv.request(blocked, 2, None), sv.ping(41))
        self.assertEqual(await self.sup.recv(), ("Pong", 41))
        release.set()
        self.assertEqual(await self.sup.recv(), ("Response", blocked, b'"released"'))
        await self.sup.send(sv.cancel(slow), sv.ping(42))
        self.assertEqual(await self.sup.recv(), ("Pong", 42))

    async def test_a_cancelled_request_gets_no_answer_and_its_retry_gets_one(self):
        worker, theirs = make_worker()
        started = []

        @worker.handle("wait")
        async def wait(value):
            started.append(value)
            try:
                await asyncio.sleep(3600 if value == "first" else 0)
            except asyncio.CancelledError:
                worker.emit_nowait("cancelled", value)
                raise
            return value

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, 1, "first"), sv.ping(1))
        await self.sup.expect("Pong")
        await self.sup.send(sv.cancel(rid), sv.ping(2), sv.request(rid, 1, "retry"))
        answer, before = await self.sup.until(lambda m: m[0] == "Response", "the retry's answer")
        self.assertEqual(answer, ("Response", rid, b'"retry"'))
        self.assertIn(("Emit", "cancelled", b'"first"', None), before)
        self.assertIn(("Pong", 2), before)
        # A Cancel for an answered request is ignored; nothing more comes for the id.
        await self.sup.send(sv.cancel(rid), sv.ping(3))
        self.assertEqual(await self.sup.recv(), ("Pong", 3))

    async def test_soft_kill_runs_the_hook_waits_for_requests_then_says_done(self):
        worker, theirs = make_worker()
        release = asyncio.Event()

        @worker.handle("hold")
        async def hold(_value):
            await release.wait()
            return "held"

        @worker.on_soft_kill
        async def goodbye():
            await worker.emit("goodbye", None)

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, 1, None), sv.SOFT_KILL, sv.ping(1))
        # The hook runs and Ping is answered while the request holds the worker.
        got = [await self.sup.recv(), await self.sup.recv()]
        self.assertCountEqual(got, [("Emit", "goodbye", b"null", None), ("Pong", 1)])
        release.set()
        self.assertEqual(await self.sup.recv(), ("Response", rid, b'"held"'))
        self.assertEqual(await self.sup.recv(), ("SoftKillDone",))
        self.assertIsNone(await self.sup.recv())
        self.assertEqual(await self.ended(), SOFT_KILL)

    async def test_hard_kill_ends_at_once_with_handlers_running(self):
        worker, theirs = make_worker()

        @worker.handle("sleep")
        async def sleep(_value):
            await asyncio.sleep(3600)

        await self.start(worker, theirs)
        await self.sup.send(sv.request(sv.new_id(), 1, None), sv.HARD_KILL)
        self.assertEqual(await self.ended(), HARD_KILL)
        self.assertIsNone(await self.sup.recv())

    async def test_end_of_file_ends_with_handlers_running(self):
        worker, theirs = make_worker()

        @worker.handle("sleep")
        async def sleep(_value):
            await asyncio.sleep(3600)

        await self.start(worker, theirs)
        await self.sup.send(sv.request(sv.new_id(), 1, None), sv.ping(1))
        await self.sup.expect("Pong")
        self.sup.close()
        self.assertEqual(await self.ended(), EOF)

    async def test_emit_with_reply_returns_the_reply_or_raises_its_error(self):
        worker, theirs = make_worker()

        @worker.handle("ask")
        async def ask(question):
            return await worker.emit("question", question, reply=True)

        await self.start(worker, theirs)
        a, b = sv.new_id(), sv.new_id()
        await self.sup.send(sv.request(a, 1, "why"))
        emit = await self.sup.expect("Emit")
        self.assertEqual(emit[1:3], ("question", b'"why"'))
        await self.sup.send(sv.emit_reply(emit[3], {"because": 1}))
        self.assertEqual(await self.sup.recv(), ("Response", a, b'{"because":1}'))
        await self.sup.send(sv.request(b, 1, "who"))
        emit = await self.sup.expect("Emit")
        await self.sup.send(sv.emit_reply(emit[3], error="no subscriber replied"))
        self.assertEqual(await self.sup.recv(), ("Failed", b, "no subscriber replied"))

    async def test_events_stats_usage_busy_and_ready(self):
        worker, theirs = make_worker()
        remembered = []

        @worker.on_event("remember")
        def remember(value):
            remembered.append(value)

        @worker.handle("recall")
        def recall(_value):
            worker.busy()
            worker.report_stats({"hits": 2})
            worker.ready()
            return remembered

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.event("remember", [1]), sv.event("other", 0), sv.request(rid, 1, None))
        self.assertEqual(await self.sup.recv(), ("Busy",))
        self.assertEqual(await self.sup.recv(), ("Stats", [("hits", 2.0)]))
        self.assertEqual(await self.sup.recv(), ("Ready",))
        self.assertEqual(await self.sup.recv(), ("Response", rid, b"[[1]]"))
        await self.sup.send(sv.REPORT_USAGE)
        usage = await self.sup.expect("Usage")
        self.assertGreater(usage[1], 0)
        self.assertGreater(usage[2], 0)

    async def test_a_response_stream_stays_within_its_credit(self):
        worker, theirs = make_worker()
        size = 1024 * 1024 + 5
        pattern = (bytes(range(251)) * (size // 251 + 1))[:size]

        @worker.handle("stream")
        async def stream(_value):
            return Streamed("meta", pattern)

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, 1, None))
        self.assertEqual(await self.sup.recv(), ("ResponseStreamed", rid, b'"meta"'))
        received = bytearray()
        while len(received) < 256 * 1024:
            message = await self.sup.expect("StreamData")
            self.assertLessEqual(len(message[2]), 64 * 1024)
            received += message[2]
        # The whole window is spent: nothing more may come before more credit.
        await self.sup.send(sv.ping(1))
        self.assertEqual(await self.sup.recv(), ("Pong", 1))
        self.assertEqual(len(received), 256 * 1024)
        while True:
            await self.sup.send(sv.stream_credit(rid, 64 * 1024))
            message = await self.sup.expect("StreamData", "StreamEnd")
            if message[0] == "StreamEnd":
                break
            received += message[2]
        self.assertEqual(message, ("StreamEnd", rid, (True, size)))
        self.assertEqual(bytes(received), pattern)

    async def test_a_request_stream_is_read_with_credit_granted_as_it_is_read(self):
        worker, theirs = make_worker()

        @worker.handle("count")
        async def count(_value):
            total = 0
            async for chunk in current_request().stream:
                total += len(chunk)
            return total

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, 1, None, streamed=True))
        chunk = b"x" * (64 * 1024)
        sent = 0
        credit = 256 * 1024
        while sent < 1024 * 1024:
            while credit < len(chunk):
                message = await self.sup.expect("StreamCredit")
                credit += message[2]
            await self.sup.send(sv.stream_data(rid, chunk))
            sent += len(chunk)
            credit -= len(chunk)
        await self.sup.send(sv.stream_end(rid, sent))
        answer, _credits = await self.sup.until(lambda m: m[0] == "Response", "the answer")
        self.assertEqual(answer, ("Response", rid, str(sent).encode()))

    async def test_a_request_stream_that_fails_fails_the_read(self):
        worker, theirs = make_worker()

        @worker.handle("read")
        async def read(_value):
            return len(await current_request().stream.read())

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(
            sv.request(rid, 1, None, streamed=True),
            sv.stream_data(rid, b"abc"),
            sv.stream_end(rid, error="the caller's reader failed"),
        )
        failed = await self.sup.expect("Failed")
        self.assertIn("the caller's reader failed", failed[2])

    async def test_an_answer_over_the_frame_limit_fails_instead(self):
        ours, theirs = socket.socketpair()
        worker = Worker(channel=ours, max_frame_len=100)

        @worker.handle("big")
        async def big(size):
            return "x" * size

        await self.start(worker, theirs)
        small, large = sv.new_id(), sv.new_id()
        await self.sup.send(sv.request(small, 1, 10), sv.request(large, 1, 200))
        self.assertEqual(await self.sup.recv(), ("Response", small, b'"' + b"x" * 10 + b'"'))
        failed = await self.sup.expect("Failed")
        self.assertEqual(failed[1], large)
        self.assertIn("over the limit of 100 bytes", failed[2])

    async def test_a_second_request_with_an_id_in_flight_is_refused(self):
        worker, theirs = make_worker()
        release = asyncio.Event()

        @worker.handle("hold")
        async def hold(_value):
            await release.wait()
            return "first"

        await self.start(worker, theirs)
        rid = sv.new_id()
        await self.sup.send(sv.request(rid, 1, None), sv.request(rid, 1, None))
        failed = await self.sup.expect("Failed")
        self.assertIn("already in flight", failed[2])
        release.set()
        self.assertEqual(await self.sup.recv(), ("Response", rid, b'"first"'))

    async def test_another_codec_fails_the_handshake_after_our_hello(self):
        worker, theirs = make_worker()
        serving = asyncio.get_running_loop().create_task(worker.serve())
        sup = await sv.Supervisor.connect(theirs)
        await sup.send(sv.hello(codec=0))
        await sup.expect("Hello")
        with self.assertRaisesRegex(HandshakeError, "codec is postcard"):
            await asyncio.wait_for(serving, sv.DEADLINE)
        sup.close()


if __name__ == "__main__":
    unittest.main()
