//! Every byte shown in WIRE.md is what the code produces: the worked
//! examples, the fixed frames, the postcard rule examples and the variant
//! tables are read from the document and checked against real encodings.

mod common;

use common::{every_to_supervisor, every_to_worker, to_supervisor_index, to_worker_index};
use lpm_protocol::{
    frame, RequestFrame, Timestamp, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use serde::Serialize;
use serde_bytes::ByteBuf;
use std::fmt::Debug;
use uuid::Uuid;

const WIRE: &str = include_str!("../WIRE.md");

const EXAMPLE_ID: Uuid = Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    frame(msg, DEFAULT_MAX_FRAME_LEN).unwrap()
}

/// The bytes of the first ```text block after the heading that starts with
/// `heading`: each line contributes its leading two-digit hex tokens.
fn example_bytes(heading: &str) -> Vec<u8> {
    let start = WIRE
        .lines()
        .position(|l| l.starts_with(heading))
        .unwrap_or_else(|| panic!("WIRE.md has no heading {heading:?}"));
    let mut lines = WIRE.lines().skip(start + 1);
    lines
        .by_ref()
        .find(|l| *l == "```text")
        .unwrap_or_else(|| panic!("no ```text block after {heading:?}"));
    let mut bytes = Vec::new();
    for line in lines.take_while(|l| *l != "```") {
        for token in line.split_whitespace() {
            match u8::from_str_radix(token, 16) {
                Ok(b) if token.len() == 2 => bytes.push(b),
                _ => break,
            }
        }
    }
    bytes
}

#[test]
fn example_1_worker_hello() {
    let msg = ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: 4242,
    };
    assert_eq!(hex(&example_bytes("### Example 1")), hex(&encode(&msg)));
}

#[test]
fn example_2_request_and_its_cancel() {
    let payload = postcard::to_allocvec(&("hi".to_string(), -2i32)).unwrap();
    let msg = ToWorker::Request(RequestFrame {
        id: EXAMPLE_ID,
        created_at: Timestamp(1_700_000_000_123_456_789),
        payload,
    });
    assert_eq!(hex(&example_bytes("### Example 2")), hex(&encode(&msg)));

    let cancel = ToWorker::Cancel { id: EXAMPLE_ID };
    let text = format!("is `{}`", hex(&encode(&cancel)));
    assert!(WIRE.contains(&text), "WIRE.md lacks {text:?}");
}

#[test]
fn example_3_emit_and_its_reply() {
    let msg = ToSupervisor::Emit {
        name: "tick".into(),
        payload: Vec::new(),
        reply_to: Some(300),
    };
    assert_eq!(hex(&example_bytes("### Example 3")), hex(&encode(&msg)));

    let reply = ToWorker::EmitReply {
        emit_id: 300,
        outcome: Ok(ByteBuf::from(vec![1])),
    };
    let text = format!("is `{}`", hex(&encode(&reply)));
    assert!(WIRE.contains(&text), "WIRE.md lacks {text:?}");
}

#[test]
fn frames_without_fields() {
    let frames: [(&str, Vec<u8>); 5] = [
        ("ToSupervisor::Ready", encode(&ToSupervisor::Ready)),
        ("ToSupervisor::Busy", encode(&ToSupervisor::Busy)),
        (
            "ToSupervisor::SoftKillDone",
            encode(&ToSupervisor::SoftKillDone),
        ),
        ("ToWorker::SoftKill", encode(&ToWorker::SoftKill)),
        ("ToWorker::HardKill", encode(&ToWorker::HardKill)),
    ];
    for (name, bytes) in frames {
        let row = format!("| `{name}` | `{}` |", hex(&bytes));
        assert!(WIRE.contains(&row), "WIRE.md lacks the row {row:?}");
    }
}

/// The rules table shows "`label` → `hex`"; `value` is what the label names.
fn rule<T: Serialize + ?Sized>(label: &str, value: &T) {
    let text = format!(
        "`{label}` → `{}`",
        hex(&postcard::to_allocvec(value).unwrap())
    );
    assert!(WIRE.contains(&text), "WIRE.md lacks {text:?}");
}

#[test]
fn postcard_rule_examples() {
    rule("7u8", &7u8);
    rule("-1i8", &-1i8);
    rule("true", &true);
    rule("127u32", &127u32);
    rule("128u32", &128u32);
    rule("300u32", &300u32);
    rule("-1i32", &-1i32);
    rule("-2i32", &-2i32);
    rule("300i32", &300i32);
    rule("1.5f64", &1.5f64);
    rule("\"hi\"", "hi");
    rule("[1u8, 2]", &ByteBuf::from(vec![1u8, 2]));
    rule("[1u8, 2]", &vec![1u8, 2]);
    rule("vec![1u16, 300]", &vec![1u16, 300]);
    rule("(1u8, \"hi\")", &(1u8, "hi"));
    rule("None::<u64>", &None::<u64>);
    rule("Some(300u64)", &Some(300u64));
    rule("Ok::<u8, String>(7)", &Ok::<u8, String>(7));
    rule("Err::<u8, String>(\"no\")", &Err::<u8, String>("no".into()));
    rule("67e55044-10b1-426f-9247-bb680e5fe0c8", &EXAMPLE_ID);
    rule("Timestamp(1_000_000_000)", &Timestamp(1_000_000_000));
}

#[test]
fn uuid_is_length_16_then_its_bytes() {
    let bytes = postcard::to_allocvec(&EXAMPLE_ID).unwrap();
    assert_eq!(bytes[0], 16);
    assert_eq!(&bytes[1..], EXAMPLE_ID.as_bytes());
    assert_eq!(postcard::from_bytes::<Uuid>(&bytes).unwrap(), EXAMPLE_ID);
}

#[test]
fn timestamp_is_nanoseconds_since_the_epoch() {
    let one_second = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
    assert_eq!(Timestamp::from(one_second), Timestamp(1_000_000_000));
    assert_eq!(Timestamp(1_000_000_000).to_system_time(), one_second);
}

/// The section of WIRE.md from `heading` to the next heading.
fn section(heading: &str) -> &'static str {
    let start = WIRE
        .find(heading)
        .unwrap_or_else(|| panic!("WIRE.md has no heading {heading:?}"));
    let rest = &WIRE[start + heading.len()..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

fn variant_name<T: Debug>(msg: &T) -> String {
    format!("{msg:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

#[test]
fn variant_tables_match_the_enums() {
    let to_worker = section("### `ToWorker`");
    for msg in every_to_worker() {
        let row = format!("| {} | `{}` |", to_worker_index(&msg), variant_name(&msg));
        assert!(to_worker.contains(&row), "ToWorker table lacks {row:?}");
    }
    let to_supervisor = section("### `ToSupervisor`");
    for msg in every_to_supervisor() {
        let row = format!(
            "| {} | `{}` |",
            to_supervisor_index(&msg),
            variant_name(&msg)
        );
        assert!(
            to_supervisor.contains(&row),
            "ToSupervisor table lacks {row:?}"
        );
    }
}

#[test]
fn documented_constants() {
    assert_eq!(PROTOCOL_VERSION, 2);
    assert!(WIRE.starts_with("# Wire format, version 2\n"));
    assert_eq!(lpm_protocol::IPC_FD, 3);
    assert_eq!(lpm_protocol::IPC_FD_ENV, "LPM_IPC_FD");
    assert_eq!(lpm_protocol::HEADER_LEN, 4);
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 16_777_216);
    assert!(WIRE.contains("16 777 216 bytes"));
}
