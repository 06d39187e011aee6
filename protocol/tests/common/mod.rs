//! Messages and proptest strategies shared by the test files.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use bytes::BytesMut;
use lpm_protocol::{
    encode_frame, Codec, Error, Fd, FdKind, FrameDecoder, RequestFrame, Timestamp, ToSupervisor,
    ToWorker,
};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;
use uuid::Uuid;

/// The wire index of a `ToWorker` variant. The match has no wildcard, so a
/// new variant does not compile until the samples below cover it.
pub(crate) fn to_worker_index(msg: &ToWorker) -> u8 {
    match msg {
        ToWorker::Hello { .. } => 0,
        ToWorker::Request(_) => 1,
        ToWorker::Event { .. } => 2,
        ToWorker::EmitReply { .. } => 3,
        ToWorker::SoftKill => 4,
        ToWorker::HardKill => 5,
        ToWorker::Cancel { .. } => 6,
        ToWorker::Ping { .. } => 7,
        ToWorker::RequestWithFd { .. } => 8,
        ToWorker::EventWithFd { .. } => 9,
        ToWorker::RequestStreamed(_) => 10,
        ToWorker::StreamData { .. } => 11,
        ToWorker::StreamEnd { .. } => 12,
        ToWorker::StreamCredit { .. } => 13,
        ToWorker::ReportUsage => 14,
    }
}

/// Number of `ToWorker` variants.
pub(crate) const TO_WORKER_VARIANTS: u8 = 15;

/// The wire index of a `ToSupervisor` variant (no wildcard, as above).
pub(crate) fn to_supervisor_index(msg: &ToSupervisor) -> u8 {
    match msg {
        ToSupervisor::Hello { .. } => 0,
        ToSupervisor::Ready => 1,
        ToSupervisor::Busy => 2,
        ToSupervisor::Response { .. } => 3,
        ToSupervisor::Failed { .. } => 4,
        ToSupervisor::Ack { .. } => 5,
        ToSupervisor::Emit { .. } => 6,
        ToSupervisor::SoftKillDone => 7,
        ToSupervisor::Stats(_) => 8,
        ToSupervisor::Pong { .. } => 9,
        ToSupervisor::ResponseWithStream { .. } => 10,
        ToSupervisor::StreamEnd { .. } => 11,
        ToSupervisor::SocketClosed { .. } => 12,
        ToSupervisor::NotHandled { .. } => 13,
        ToSupervisor::ResponseStreamed { .. } => 14,
        ToSupervisor::StreamData { .. } => 15,
        ToSupervisor::StreamCredit { .. } => 16,
        ToSupervisor::Usage { .. } => 17,
    }
}

/// Number of `ToSupervisor` variants.
pub(crate) const TO_SUPERVISOR_VARIANTS: u8 = 18;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e000 | n)
}

/// Every `ToWorker` variant at least once, with empty and non-empty fields.
pub(crate) fn every_to_worker() -> Vec<ToWorker> {
    vec![
        ToWorker::Hello {
            version: lpm_protocol::PROTOCOL_VERSION,
            slot: 0,
            codec: Codec::Postcard,
        },
        ToWorker::Hello {
            version: u16::MAX,
            slot: u32::MAX,
            codec: Codec::Json,
        },
        ToWorker::Request(RequestFrame {
            id: id(1),
            created_at: Timestamp(1_700_000_000_123_456_789),
            call: 0,
            payload: vec![2, b'h', b'i', 3],
            trace: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        }),
        ToWorker::Request(RequestFrame {
            id: Uuid::nil(),
            created_at: Timestamp(0),
            call: u32::MAX,
            payload: Vec::new(),
            trace: None,
        }),
        ToWorker::Event {
            name: "config-reloaded".into(),
            payload: vec![0xff; 200],
        },
        ToWorker::Event {
            name: String::new(),
            payload: Vec::new(),
        },
        ToWorker::EmitReply {
            emit_id: 300,
            outcome: Ok(ByteBuf::from(vec![1, 2, 3])),
        },
        ToWorker::EmitReply {
            emit_id: u64::MAX,
            outcome: Err("no subscriber answered — ünïcode".into()),
        },
        ToWorker::SoftKill,
        ToWorker::HardKill,
        ToWorker::Cancel { id: id(6) },
        ToWorker::Cancel { id: Uuid::nil() },
        ToWorker::Ping { seq: 0 },
        ToWorker::Ping { seq: u64::MAX },
        // Decoded bodies hold no descriptor: the stream attaches it.
        ToWorker::RequestWithFd {
            request: RequestFrame {
                id: id(7),
                created_at: Timestamp(5),
                call: 2,
                payload: vec![1],
                trace: None,
            },
            kind: FdKind::Pipe,
            fd: Fd::none(),
        },
        ToWorker::RequestWithFd {
            request: RequestFrame {
                id: Uuid::nil(),
                created_at: Timestamp(0),
                call: 0,
                payload: Vec::new(),
                trace: None,
            },
            kind: FdKind::UnixStream,
            fd: Fd::none(),
        },
        ToWorker::EventWithFd {
            name: "listen".into(),
            payload: vec![9, 9],
            kind: FdKind::TcpListener,
            fd: Fd::none(),
        },
        ToWorker::RequestStreamed(RequestFrame {
            id: id(13),
            created_at: Timestamp(7),
            call: 1,
            payload: vec![4, 2],
            trace: None,
        }),
        ToWorker::StreamData {
            id: id(13),
            data: vec![0xab; 300],
        },
        ToWorker::StreamData {
            id: id(13),
            data: Vec::new(),
        },
        ToWorker::StreamEnd {
            id: id(13),
            outcome: Ok(300),
        },
        ToWorker::StreamEnd {
            id: id(14),
            outcome: Err("the caller's reader failed".into()),
        },
        ToWorker::StreamCredit {
            id: id(15),
            bytes: 262_144,
        },
        ToWorker::ReportUsage,
    ]
}

/// Every `ToSupervisor` variant at least once, with empty and non-empty fields.
pub(crate) fn every_to_supervisor() -> Vec<ToSupervisor> {
    vec![
        ToSupervisor::Hello {
            version: lpm_protocol::PROTOCOL_VERSION,
            pid: 4242,
            codec: Codec::Postcard,
            calls: Vec::new(),
            takes_fds: true,
        },
        ToSupervisor::Hello {
            version: lpm_protocol::PROTOCOL_VERSION,
            pid: 1,
            codec: Codec::Json,
            calls: vec!["count_primes".into(), "ünïcode".into()],
            takes_fds: true,
        },
        ToSupervisor::Ready,
        ToSupervisor::Busy,
        ToSupervisor::Response {
            id: id(2),
            payload: vec![7; 130],
        },
        ToSupervisor::Response {
            id: id(3),
            payload: Vec::new(),
        },
        ToSupervisor::Failed {
            id: id(4),
            message: "handler panicked: index out of bounds".into(),
        },
        ToSupervisor::Ack { id: id(5) },
        ToSupervisor::Emit {
            name: "tick".into(),
            payload: vec![0x2a],
            reply_to: None,
        },
        ToSupervisor::Emit {
            name: "ask".into(),
            payload: Vec::new(),
            reply_to: Some(300),
        },
        ToSupervisor::SoftKillDone,
        ToSupervisor::Stats(Vec::new()),
        ToSupervisor::Stats(vec![
            ("heap".into(), 1.5e9),
            ("hit-ratio".into(), -0.25),
            ("inf".into(), f64::INFINITY),
        ]),
        ToSupervisor::Pong { seq: 0 },
        ToSupervisor::Pong { seq: u64::MAX },
        ToSupervisor::ResponseWithStream {
            id: id(8),
            payload: vec![3; 20],
            fd: Fd::none(),
        },
        ToSupervisor::StreamEnd {
            id: id(9),
            outcome: Ok(u64::MAX),
        },
        ToSupervisor::StreamEnd {
            id: id(10),
            outcome: Err("reader failed".into()),
        },
        ToSupervisor::SocketClosed { id: id(11) },
        ToSupervisor::NotHandled { id: id(12) },
        ToSupervisor::ResponseStreamed {
            id: id(15),
            payload: vec![1],
        },
        ToSupervisor::StreamData {
            id: id(15),
            data: vec![0xcd; 70_000],
        },
        ToSupervisor::StreamCredit {
            id: id(13),
            bytes: u64::MAX,
        },
        ToSupervisor::Usage {
            rss_bytes: 50 << 20,
            cpu_ns: 1_250_000_000,
        },
    ]
}

/// The messages that declare no file descriptor (the others need `push_with_fd`).
pub(crate) fn without_fds<T: lpm_protocol::CarriesFd>(msgs: Vec<T>) -> Vec<T> {
    msgs.into_iter()
        .filter_map(|mut m| m.fd_slot().is_none().then_some(m))
        .collect()
}

/// `msgs` as back-to-back frames, and the offset where each frame ends.
pub(crate) fn encode_all<T: Serialize>(msgs: &[T], max_frame_len: usize) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for msg in msgs {
        encode_frame(msg, &mut out, max_frame_len).expect("sample message encodes");
        ends.push(out.len());
    }
    (out, ends)
}

/// Every message `decoder` can take out of `buf` now.
pub(crate) fn drain<T: DeserializeOwned>(
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    while let Some(msg) = decoder.decode(buf)? {
        out.push(msg);
    }
    Ok(out)
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(Uuid::from_bytes)
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Postcard), Just(Codec::Json)]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..64)
}

/// Any `f64` but NaN, which is not equal to itself (NaN has its own test).
fn f64_not_nan() -> impl Strategy<Value = f64> {
    use prop::num::f64;
    f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO | f64::INFINITE
}

fn fd_kind() -> impl Strategy<Value = FdKind> {
    prop_oneof![
        Just(FdKind::Pipe),
        Just(FdKind::File),
        Just(FdKind::TcpStream),
        Just(FdKind::UnixStream),
        Just(FdKind::TcpListener),
        Just(FdKind::UnixListener),
    ]
}

/// Any `ToWorker`.
pub(crate) fn to_worker() -> impl Strategy<Value = ToWorker> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), codec()).prop_map(|(version, slot, codec)| ToWorker::Hello {
            version,
            slot,
            codec
        }),
        (
            uuid(),
            any::<u64>(),
            any::<u32>(),
            bytes(),
            any::<Option<String>>()
        )
            .prop_map(|(id, t, call, payload, trace)| {
                ToWorker::Request(RequestFrame {
                    id,
                    created_at: Timestamp(t),
                    call,
                    payload,
                    trace,
                })
            }),
        (uuid(), any::<u64>(), bytes()).prop_map(|(id, t, payload)| {
            ToWorker::RequestStreamed(RequestFrame {
                id,
                created_at: Timestamp(t),
                call: 0,
                payload,
                trace: None,
            })
        }),
        (any::<String>(), bytes()).prop_map(|(name, payload)| ToWorker::Event { name, payload }),
        (
            any::<u64>(),
            prop_oneof![
                bytes().prop_map(|b| Ok(ByteBuf::from(b))),
                any::<String>().prop_map(Err),
            ]
        )
            .prop_map(|(emit_id, outcome)| ToWorker::EmitReply { emit_id, outcome }),
        Just(ToWorker::SoftKill),
        Just(ToWorker::HardKill),
        uuid().prop_map(|id| ToWorker::Cancel { id }),
        (uuid(), bytes()).prop_map(|(id, data)| ToWorker::StreamData { id, data }),
        (
            uuid(),
            prop_oneof![any::<u64>().prop_map(Ok), any::<String>().prop_map(Err)]
        )
            .prop_map(|(id, outcome)| ToWorker::StreamEnd { id, outcome }),
        (uuid(), any::<u64>()).prop_map(|(id, bytes)| ToWorker::StreamCredit { id, bytes }),
        Just(ToWorker::ReportUsage),
        any::<u64>().prop_map(|seq| ToWorker::Ping { seq }),
        (uuid(), any::<u64>(), bytes(), fd_kind()).prop_map(|(id, t, payload, kind)| {
            ToWorker::RequestWithFd {
                request: RequestFrame {
                    id,
                    created_at: Timestamp(t),
                    call: 1,
                    payload,
                    trace: None,
                },
                kind,
                fd: Fd::none(),
            }
        }),
        (any::<String>(), bytes(), fd_kind()).prop_map(|(name, payload, kind)| {
            ToWorker::EventWithFd {
                name,
                payload,
                kind,
                fd: Fd::none(),
            }
        }),
    ]
}

/// Any `ToSupervisor` without NaN in its stats.
pub(crate) fn to_supervisor() -> impl Strategy<Value = ToSupervisor> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), any::<bool>()).prop_map(|(version, pid, takes_fds)| {
            ToSupervisor::Hello {
                version,
                pid,
                codec: Codec::Json,
                calls: vec!["a".into(), String::new()],
                takes_fds,
            }
        }),
        Just(ToSupervisor::Ready),
        Just(ToSupervisor::Busy),
        (uuid(), bytes()).prop_map(|(id, payload)| ToSupervisor::Response { id, payload }),
        (uuid(), any::<String>()).prop_map(|(id, message)| ToSupervisor::Failed { id, message }),
        uuid().prop_map(|id| ToSupervisor::Ack { id }),
        (any::<String>(), bytes(), any::<Option<u64>>()).prop_map(|(name, payload, reply_to)| {
            ToSupervisor::Emit {
                name,
                payload,
                reply_to,
            }
        }),
        Just(ToSupervisor::SoftKillDone),
        prop::collection::vec((any::<String>(), f64_not_nan()), 0..8).prop_map(ToSupervisor::Stats),
        any::<u64>().prop_map(|seq| ToSupervisor::Pong { seq }),
        (uuid(), bytes()).prop_map(|(id, payload)| ToSupervisor::ResponseWithStream {
            id,
            payload,
            fd: Fd::none(),
        }),
        (
            uuid(),
            prop_oneof![any::<u64>().prop_map(Ok), any::<String>().prop_map(Err)]
        )
            .prop_map(|(id, outcome)| ToSupervisor::StreamEnd { id, outcome }),
        uuid().prop_map(|id| ToSupervisor::SocketClosed { id }),
        uuid().prop_map(|id| ToSupervisor::NotHandled { id }),
        (uuid(), bytes()).prop_map(|(id, payload)| ToSupervisor::ResponseStreamed { id, payload }),
        (uuid(), bytes()).prop_map(|(id, data)| ToSupervisor::StreamData { id, data }),
        (uuid(), any::<u64>()).prop_map(|(id, bytes)| ToSupervisor::StreamCredit { id, bytes }),
        (any::<u64>(), any::<u64>())
            .prop_map(|(rss_bytes, cpu_ns)| ToSupervisor::Usage { rss_bytes, cpu_ns }),
    ]
}
