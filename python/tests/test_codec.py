"""The envelope codec against the hex dumps of protocol/WIRE.md.

Run from the repository root: ``python3 -m unittest discover -s python/tests``.
Every dump below is copied from WIRE.md, which
protocol/tests/wire_examples.rs checks against the Rust encoder.
"""

import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lpm_worker import messages as msg  # noqa: E402
from lpm_worker import postcard as pc  # noqa: E402
from lpm_worker.errors import DecodeError, FrameTooLarge, ProtocolError  # noqa: E402
from lpm_worker.frames import FrameReader, frame  # noqa: E402

ID = uuid.UUID("67e55044-10b1-426f-9247-bb680e5fe0c8").bytes
CREATED_AT = 1_700_000_000_123_456_789
LIMIT = 16 * 1024 * 1024


def hexbytes(text):
    return bytes.fromhex(text)


def body_of(framed):
    """The body of one frame, checking that its header says its length."""
    reader = FrameReader(LIMIT)
    bodies = reader.feed(framed)
    assert len(bodies) == 1 and not reader.partial, "exactly one whole frame"
    return bodies[0]


class PostcardRules(unittest.TestCase):
    """The table "Postcard rules that matter"."""

    def test_unsigned_varints(self):
        self.assertEqual(pc.varint(127), hexbytes("7f"))
        self.assertEqual(pc.varint(128), hexbytes("80 01"))
        self.assertEqual(pc.varint(300), hexbytes("ac 02"))
        self.assertEqual(pc.Reader(hexbytes("ac 02")).u32(), 300)

    def test_zigzag(self):
        self.assertEqual(pc.varint(pc.zigzag(-1)), hexbytes("01"))
        self.assertEqual(pc.varint(pc.zigzag(-2)), hexbytes("03"))
        self.assertEqual(pc.varint(pc.zigzag(300)), hexbytes("d8 04"))
        for n in (0, 1, -1, 2, -2, 2**62, -(2**63)):
            self.assertEqual(pc.unzigzag(pc.zigzag(n)), n)
        self.assertEqual(pc.Reader(hexbytes("d8 04")).i64(), 300)

    def test_f64_strings_bytes_vecs(self):
        self.assertEqual(pc.f64(1.5), hexbytes("00 00 00 00 00 00 f8 3f"))
        self.assertEqual(pc.string("hi"), hexbytes("02 68 69"))
        self.assertEqual(pc.byte_string(b"\x01\x02"), hexbytes("02 01 02"))
        self.assertEqual(pc.vec([1, 300], pc.varint), hexbytes("02 01 ac 02"))

    def test_option_and_result(self):
        self.assertEqual(pc.option(None, pc.varint), hexbytes("00"))
        self.assertEqual(pc.option(300, pc.varint), hexbytes("01 ac 02"))
        r = pc.Reader(hexbytes("00 07"))
        self.assertEqual(r.result(r.u8, r.string), (True, 7))
        r = pc.Reader(hexbytes("01 02 6e 6f"))
        self.assertEqual(r.result(r.u8, r.string), (False, "no"))

    def test_uuid_and_timestamp(self):
        dump = hexbytes("10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8")
        self.assertEqual(pc.uuid_bytes(ID), dump)
        self.assertEqual(pc.Reader(dump).uuid(), ID)
        self.assertEqual(pc.varint(1_000_000_000), hexbytes("80 94 eb dc 03"))

    def test_a_varint_too_long_for_its_type_is_refused(self):
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("ff ff ff ff ff 01")).u32()  # six bytes
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("ff ff ff ff 1f")).u32()  # 2**35 - 1
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("ff ff 04")).u16()  # 2**16 + …
        self.assertEqual(pc.Reader(hexbytes("ff ff ff ff 0f")).u32(), 2**32 - 1)

    def test_truncated_and_invalid_fields_are_refused(self):
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("80")).u64()
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("03 61 62")).string()
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("02 c3 28")).string()  # not UTF-8
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("02 01 02")).uuid()  # not 16 bytes
        with self.assertRaises(DecodeError):
            pc.Reader(hexbytes("02")).option(pc.Reader(b"").u8)


class Frames(unittest.TestCase):
    """Frames: the header, the limit, bodies cut out of pieces."""

    def test_the_frames_without_fields(self):
        self.assertEqual(frame(msg.READY, LIMIT), hexbytes("01 00 00 00 01"))
        self.assertEqual(frame(msg.BUSY, LIMIT), hexbytes("01 00 00 00 02"))
        self.assertEqual(frame(msg.SOFT_KILL_DONE, LIMIT), hexbytes("01 00 00 00 07"))
        self.assertIsInstance(msg.decode(body_of(hexbytes("01 00 00 00 04"))), msg.SoftKill)
        self.assertIsInstance(msg.decode(body_of(hexbytes("01 00 00 00 05"))), msg.HardKill)

    def test_a_body_at_the_limit_passes_and_one_over_is_refused_from_its_header(self):
        self.assertEqual(len(frame(b"x" * 8, 8)), 12)
        with self.assertRaises(FrameTooLarge):
            frame(b"x" * 9, 8)
        self.assertEqual(FrameReader(8).feed(b"\x08\x00\x00\x00" + b"x" * 8), [b"x" * 8])
        with self.assertRaises(ProtocolError):
            FrameReader(8).feed(b"\x09\x00\x00\x00")  # refused before any body byte

    def test_an_empty_body_is_refused(self):
        with self.assertRaises(ProtocolError):
            FrameReader(LIMIT).feed(b"\x00\x00\x00\x00")

    def test_frames_arrive_in_pieces_of_any_size(self):
        stream = frame(msg.pong(1), LIMIT) + frame(msg.pong(300), LIMIT) + frame(msg.READY, LIMIT)
        for size in (1, 2, 3, 5, len(stream)):
            reader = FrameReader(LIMIT)
            bodies = []
            for start in range(0, len(stream), size):
                bodies += reader.feed(stream[start : start + size])
            self.assertEqual(bodies, [msg.pong(1), msg.pong(300), msg.READY])
            self.assertFalse(reader.partial)

    def test_trailing_bytes_and_unknown_variants_are_malformed(self):
        with self.assertRaises(DecodeError):
            msg.decode(hexbytes("04 00"))  # SoftKill with a byte left over
        with self.assertRaises(DecodeError):
            msg.decode(hexbytes("0f"))  # no ToWorker variant 15
        with self.assertRaises(DecodeError):
            msg.decode(hexbytes("00 04 02 02"))  # Hello with Codec 2


class WorkedExamples(unittest.TestCase):
    """The section "Worked examples", one test per example."""

    def test_example_1_the_workers_hello(self):
        dump = hexbytes(
            "14 00 00 00 00 04 92 21 01 01 0c"
            "63 6f 75 6e 74 5f 70 72 69 6d 65 73 00"
        )
        body = msg.hello(4242, msg.CODEC_JSON, ["count_primes"], takes_fds=False)
        self.assertEqual(frame(body, LIMIT), dump)
        hello = msg.decode(body_of(hexbytes("04 00 00 00 00 04 02 01")))
        self.assertEqual(hello, msg.Hello(version=4, slot=2, codec=msg.CODEC_JSON))

    def test_example_2_an_untyped_request_and_its_cancel(self):
        dump = hexbytes(
            "22 00 00 00 01 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8"
            "95 9a 97 ec e3 9f e7 cb 17 00 04 02 68 69 03 00"
        )
        request = msg.decode(body_of(dump))
        self.assertEqual(
            request,
            msg.Request(id=ID, created_at=CREATED_AT, call=0, payload=hexbytes("02 68 69 03"), trace=None),
        )
        cancel = hexbytes("12 00 00 00 06 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8")
        self.assertEqual(msg.decode(body_of(cancel)), msg.Cancel(ID))

    def test_example_3_a_json_call_with_a_trace_its_response_and_not_handled(self):
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        dump = hexbytes(
            "63 00 00 00 01 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8"
            "95 9a 97 ec e3 9f e7 cb 17 01 0d 7b 22 62 65 6c 6f 77 22 3a 31 30 30 7d 01 37"
        ) + trace.encode()
        request = msg.decode(body_of(dump))
        self.assertEqual(
            request,
            msg.Request(id=ID, created_at=CREATED_AT, call=1, payload=b'{"below":100}', trace=trace),
        )
        response = hexbytes("15 00 00 00 03 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8 02 32 35")
        self.assertEqual(frame(msg.response(ID, b"25"), LIMIT), response)
        not_handled = hexbytes("12 00 00 00 0d 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8")
        self.assertEqual(frame(msg.not_handled(ID), LIMIT), not_handled)

    def test_example_4_an_emit_awaiting_a_reply_and_the_reply(self):
        dump = hexbytes("0a 00 00 00 06 04 74 69 63 6b 00 01 ac 02")
        self.assertEqual(frame(msg.emit("tick", b"", reply_to=300), LIMIT), dump)
        reply = msg.decode(body_of(hexbytes("06 00 00 00 03 ac 02 00 01 01")))
        self.assertEqual(reply, msg.EmitReply(emit_id=300, ok=True, value=b"\x01"))

    def test_example_5_a_response_stream_in_band(self):
        streamed = hexbytes("14 00 00 00 0e 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8 01 01")
        self.assertEqual(frame(msg.response_streamed(ID, b"\x01"), LIMIT), streamed)
        data = hexbytes("16 00 00 00 0f 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8 03 61 62 63")
        self.assertEqual(frame(msg.stream_data(ID, b"abc"), LIMIT), data)
        end = hexbytes("14 00 00 00 0b 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8 00 03")
        self.assertEqual(frame(msg.stream_end(ID, True, 3), LIMIT), end)
        credit = hexbytes("15 00 00 00 0d 10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8 80 80 04")
        self.assertEqual(msg.decode(body_of(credit)), msg.StreamCredit(ID, 65536))

    def test_example_6_usage_asked_and_reported(self):
        self.assertIsInstance(msg.decode(body_of(hexbytes("01 00 00 00 0e"))), msg.ReportUsage)
        dump = hexbytes("0a 00 00 00 11 80 80 80 19 80 f9 85 d4 04")
        self.assertEqual(frame(msg.usage(52_428_800, 1_250_000_000), LIMIT), dump)


class OtherMessages(unittest.TestCase):
    """Messages without a dump in WIRE.md, built from its field tables."""

    def test_failed_stats_pong_credit_and_a_failed_stream(self):
        self.assertEqual(msg.failed(ID, "no"), b"\x04\x10" + ID + hexbytes("02 6e 6f"))
        self.assertEqual(
            msg.stats([("hits", 1.5)]), hexbytes("08 01 04 68 69 74 73 00 00 00 00 00 00 f8 3f")
        )
        self.assertEqual(msg.pong(300), hexbytes("09 ac 02"))
        self.assertEqual(msg.stream_credit(ID, 300), b"\x10\x10" + ID + hexbytes("ac 02"))
        self.assertEqual(msg.stream_end(ID, False, "no"), b"\x0b\x10" + ID + hexbytes("01 02 6e 6f"))
        self.assertEqual(msg.emit("e", b"1"), hexbytes("06 01 65 01 31 00"))

    def test_a_malformed_request_is_refused_whichever_path_decodes_it(self):
        good = b"\x01\x10" + ID + hexbytes("05 01 02 31 32 00")
        self.assertEqual(msg.decode(good), msg.Request(ID, 5, 1, b"12", None))
        for bad in (
            good + b"\x00",  # a trailing byte
            good[:-1],  # no trace field
            good[:-2],  # the payload cut short
            b"\x01\x0f" + ID[:15] + hexbytes("05 01 02 31 32 00"),  # an id of 15 bytes
            b"\x01\x10" + ID + hexbytes("05 01 02 31 32 02"),  # trace tag 02
        ):
            with self.assertRaises(DecodeError, msg=bad.hex()):
                msg.decode(bad)

    def test_a_failure_is_cut_to_fit_the_frame_limit_at_a_character_boundary(self):
        body = msg.failed(ID, "é" * 100, limit=40)
        self.assertLessEqual(len(body), 40)
        r = pc.Reader(body, 1)
        self.assertEqual(r.uuid(), ID)
        self.assertEqual(r.string(), "é" * 10)
        r.finish()

    def test_every_to_worker_variant_decodes(self):
        self.assertEqual(msg.decode(hexbytes("02 01 65 01 31")), msg.Event("e", b"1"))
        self.assertEqual(msg.decode(hexbytes("03 07 01 02 6e 6f")), msg.EmitReply(7, False, "no"))
        self.assertEqual(msg.decode(hexbytes("07 ac 02")), msg.Ping(300))
        request = b"\x10" + ID + hexbytes("05 02 01 31 00")
        self.assertEqual(
            msg.decode(b"\x08" + request + b"\x00"),
            msg.Request(ID, 5, 2, b"1", None, fd_kind=0),
        )
        self.assertEqual(msg.decode(hexbytes("09 01 65 00 04")), msg.Event("e", b"", fd_kind=4))
        self.assertEqual(msg.decode(b"\x0a" + request), msg.Request(ID, 5, 2, b"1", None, streamed=True))
        self.assertEqual(msg.decode(b"\x0b\x10" + ID + hexbytes("02 61 62")), msg.StreamData(ID, b"ab"))
        self.assertEqual(msg.decode(b"\x0c\x10" + ID + hexbytes("00 ac 02")), msg.StreamEnd(ID, True, 300))
        self.assertEqual(msg.decode(b"\x0c\x10" + ID + hexbytes("01 01 78")), msg.StreamEnd(ID, False, "x"))


if __name__ == "__main__":
    unittest.main()
