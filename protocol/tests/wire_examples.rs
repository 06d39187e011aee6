//! Every byte shown in WIRE.md is what the code produces: the worked
//! examples, the fixed frames, the postcard rule examples, the varint
//! enums and the variant tables (indexes, names and fields) are read from
//! the document and checked against real encodings.

mod common;

use common::{
    every_to_supervisor, every_to_worker, to_supervisor_index, to_worker_index,
    TO_SUPERVISOR_VARIANTS, TO_WORKER_VARIANTS,
};
use lpm_protocol::{
    frame, Call, Codec, FdKind, RequestFrame, Timestamp, ToSupervisor, ToWorker,
    DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::fmt::Debug;
use uuid::Uuid;

const WIRE: &str = include_str!("../WIRE.md");

const EXAMPLE_ID: Uuid = Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);

const EXAMPLE_CREATED_AT: Timestamp = Timestamp(1_700_000_000_123_456_789);

/// The W3C trace-context specification's own example `traceparent`.
const EXAMPLE_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The typed call of examples 1 and 3.
#[derive(Serialize, Deserialize)]
struct CountPrimes {
    below: u64,
}

/// Its answer.
#[derive(Serialize, Deserialize)]
struct Primes(u64);

impl Call for CountPrimes {
    const NAME: &'static str = "count_primes";
    type Reply = Primes;
}

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

/// Asserts WIRE.md shows `msg`'s frame as "is `hex`".
fn shown_inline<T: Serialize>(msg: &T) {
    let text = format!("is `{}`", hex(&encode(msg)));
    assert!(WIRE.contains(&text), "WIRE.md lacks {text:?}");
}

#[test]
fn example_1_worker_hello() {
    let msg = ToSupervisor::Hello {
        version: PROTOCOL_VERSION,
        pid: 4242,
        codec: Codec::Json,
        calls: vec![CountPrimes::NAME.into()],
        takes_fds: false,
    };
    assert_eq!(hex(&example_bytes("### Example 1")), hex(&encode(&msg)));

    shown_inline(&ToWorker::Hello {
        version: PROTOCOL_VERSION,
        slot: 2,
        codec: Codec::Json,
    });
}

#[test]
fn example_2_untyped_request_and_its_cancel() {
    let payload = Codec::Postcard.encode(&("hi".to_string(), -2i32)).unwrap();
    let msg = ToWorker::Request(RequestFrame {
        id: EXAMPLE_ID,
        created_at: EXAMPLE_CREATED_AT,
        call: 0,
        payload,
        trace: None,
    });
    assert_eq!(hex(&example_bytes("### Example 2")), hex(&encode(&msg)));

    shown_inline(&ToWorker::Cancel { id: EXAMPLE_ID });
}

#[test]
fn example_3_json_call_its_answer_and_not_handled() {
    let payload = Codec::Json.encode(&CountPrimes { below: 100 }).unwrap();
    assert_eq!(payload, br#"{"below":100}"#);
    let msg = ToWorker::Request(RequestFrame {
        id: EXAMPLE_ID,
        created_at: EXAMPLE_CREATED_AT,
        call: 1, // the first name in example 1's `calls`
        payload,
        trace: Some(EXAMPLE_TRACE.to_owned()),
    });
    assert_eq!(hex(&example_bytes("### Example 3")), hex(&encode(&msg)));

    let answer = Codec::Json.encode(&Primes(25)).unwrap();
    assert_eq!(answer, b"25");
    shown_inline(&ToSupervisor::Response {
        id: EXAMPLE_ID,
        payload: answer,
    });
    shown_inline(&ToSupervisor::NotHandled { id: EXAMPLE_ID });
}

#[test]
fn example_5_in_band_response_stream() {
    let msg = ToSupervisor::ResponseStreamed {
        id: EXAMPLE_ID,
        payload: vec![1],
    };
    assert_eq!(hex(&example_bytes("### Example 5")), hex(&encode(&msg)));

    shown_inline(&ToSupervisor::StreamData {
        id: EXAMPLE_ID,
        data: b"abc".to_vec(),
    });
    shown_inline(&ToSupervisor::StreamEnd {
        id: EXAMPLE_ID,
        outcome: Ok(3),
    });
    shown_inline(&ToWorker::StreamCredit {
        id: EXAMPLE_ID,
        bytes: 65_536,
    });
}

#[test]
fn example_6_usage() {
    shown_inline(&ToWorker::ReportUsage);
    let msg = ToSupervisor::Usage {
        rss_bytes: 50 << 20,
        cpu_ns: 1_250_000_000,
    };
    assert_eq!(hex(&example_bytes("### Example 6")), hex(&encode(&msg)));
}

#[test]
fn example_4_emit_and_its_reply() {
    let msg = ToSupervisor::Emit {
        name: "tick".into(),
        payload: Vec::new(),
        reply_to: Some(300),
    };
    assert_eq!(hex(&example_bytes("### Example 4")), hex(&encode(&msg)));

    shown_inline(&ToWorker::EmitReply {
        emit_id: 300,
        outcome: Ok(ByteBuf::from(vec![1])),
    });
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

/// The keys of every JSON object in `json`, in the order they are written.
fn json_keys(json: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut text = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => text.extend(chars.next()),
                '"' => break,
                c => text.push(c),
            }
        }
        if chars.peek() == Some(&':') {
            keys.push(text);
        }
    }
    keys
}

/// The names of the fields `msg` puts on the wire, nested ones included, in
/// wire order: serde_json writes the same fields in the same order as
/// postcard (skipping the descriptor), but with their names.
fn wire_field_names<T: Serialize>(msg: &T) -> Vec<String> {
    let json = serde_json::to_string(msg).unwrap();
    let mut keys = json_keys(&json);
    if json.starts_with('{') {
        keys.remove(0); // the variant's name
    }
    // `Ok`/`Err` are `Result` variants, not fields.
    keys.retain(|k| k != "Ok" && k != "Err");
    keys
}

/// The names before a `:` in a table's "Fields, in order" cell, nested ones
/// included: `request: (id: Uuid, ..)` names `request`, then `id`.
fn documented_field_names(cell: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, _) in cell.match_indices(':') {
        let before = &cell[..i];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |j| j + 1);
        if start < i && !cell[i + 1..].starts_with(':') {
            names.push(before[start..].to_owned());
        }
    }
    names
}

/// Checks that `table` has one row per variant of `msgs` with its index,
/// name and fields, and no other rows.
fn check_table<T: Debug + Serialize>(
    table: &str,
    msgs: Vec<T>,
    index: impl Fn(&T) -> u8,
    variants: u8,
) {
    let rows = table
        .lines()
        .filter(|l| l.starts_with("| ") && l[2..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(rows, usize::from(variants), "rows in the table");
    for msg in msgs {
        let head = format!("| {} | `{}` | ", index(&msg), variant_name(&msg));
        let row = table
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("the table lacks a row starting {head:?}"));
        let fields = row[head.len()..].split(" | ").next().unwrap();
        assert_eq!(
            documented_field_names(fields),
            wire_field_names(&msg),
            "fields of {head:?} for {msg:?}"
        );
    }
}

#[test]
fn variant_tables_match_the_enums() {
    check_table(
        section("### `ToWorker`"),
        every_to_worker(),
        to_worker_index,
        TO_WORKER_VARIANTS,
    );
    check_table(
        section("### `ToSupervisor`"),
        every_to_supervisor(),
        to_supervisor_index,
        TO_SUPERVISOR_VARIANTS,
    );
}

/// "`0` `Pipe`": each varint enum value shown with its variant's name
/// (in running text, which may break a line between the two).
#[test]
fn varint_enums() {
    let text = WIRE.split_whitespace().collect::<Vec<_>>().join(" ");
    let kinds = [
        FdKind::Pipe,
        FdKind::File,
        FdKind::TcpStream,
        FdKind::UnixStream,
        FdKind::TcpListener,
        FdKind::UnixListener,
    ];
    let codecs = [Codec::Postcard, Codec::Json];
    let shown = kinds
        .iter()
        .map(|k| (postcard::to_allocvec(k).unwrap(), format!("{k:?}")))
        .chain(
            codecs
                .iter()
                .map(|c| (postcard::to_allocvec(c).unwrap(), format!("{c:?}"))),
        );
    for (bytes, name) in shown {
        let [value] = bytes[..] else {
            panic!("{name} is not one byte: {bytes:?}")
        };
        let pair = format!("`{value}` `{name}`");
        assert!(text.contains(&pair), "WIRE.md lacks {pair:?}");
    }
}

#[test]
fn codec_table() {
    let table = section("## Payload codecs");
    for codec in [Codec::Postcard, Codec::Json] {
        let value = postcard::to_allocvec(&codec).unwrap()[0];
        let row = format!("| `{value}` `{codec:?}` | `{}` | ", codec.name());
        assert!(table.contains(&row), "the codec table lacks {row:?}");
        assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
    }
    assert_eq!(
        Codec::default(),
        Codec::Postcard,
        "WIRE.md calls postcard the default"
    );
    assert!(table.contains("**`LPM_CODEC`**"));
    assert_eq!(lpm_protocol::CODEC_ENV, "LPM_CODEC");
}

#[test]
fn documented_constants() {
    assert_eq!(PROTOCOL_VERSION, 4);
    assert!(WIRE.starts_with("# Wire format, version 4\n"));
    assert_eq!(lpm_protocol::STREAM_CHUNK, 65_536);
    assert!(WIRE.contains("at most\n  **65 536** (`STREAM_CHUNK`)"));
    assert_eq!(lpm_protocol::STREAM_WINDOW, 262_144);
    assert!(WIRE.contains("**262 144** bytes\n  (`STREAM_WINDOW`)"));
    assert_eq!(lpm_protocol::IPC_FD, 3);
    assert_eq!(lpm_protocol::IPC_FD_ENV, "LPM_IPC_FD");
    assert_eq!(lpm_protocol::HEADER_LEN, 4);
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 16_777_216);
    assert!(WIRE.contains("16 777 216 bytes"));
}

/// The numbers WIRE.md shows after `prefix`, wherever it shows one.
fn numbers_after(prefix: &str) -> Vec<u16> {
    WIRE.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &WIRE[i + prefix.len()..];
            let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse().ok()
        })
        .collect()
}

/// The tables, the session, the examples and the Python worker name the
/// current version wherever they name one.
#[test]
fn every_version_shown_is_the_current_one() {
    let v = PROTOCOL_VERSION;
    for (prefix, at_least) in [
        ("version: ", 4), // the session diagram and example 1
        ("protocol version (", 2),
        ("equal to its own (", 1),
        ("version == ", 1),
        (" v", 1),
    ] {
        let shown = numbers_after(prefix);
        assert!(shown.len() >= at_least, "{prefix:?} shown {shown:?}");
        assert!(shown.iter().all(|&n| n == v), "{prefix:?} shown {shown:?}");
    }
    let hello =
        format!("write_frame(b\"\\x00\" + varint({v}) + varint(os.getpid()) + varint(JSON)");
    assert!(
        WIRE.contains(&hello),
        "the Python worker's Hello lacks {hello:?}"
    );
    let json = postcard::to_allocvec(&Codec::Json).unwrap()[0];
    assert!(WIRE.contains(&format!("\nJSON = {json} ")));
}
