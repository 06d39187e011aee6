//! The body length limit: a body of exactly `max_frame_len` passes, one byte
//! more is `Error::FrameTooLarge` on both sides, and a forged length is
//! rejected before the decoder reserves memory for it.

use bytes::BytesMut;
use lpm_protocol::{
    encode_frame, frame, Error, FrameDecoder, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN,
    HEADER_LEN,
};

/// Bytes of a postcard varint holding `n`.
fn varint_len(n: usize) -> usize {
    let mut len = 1;
    let mut n = n >> 7;
    while n > 0 {
        len += 1;
        n >>= 7;
    }
    len
}

/// An `Event` whose body is exactly `body_len` bytes: variant index (1 byte),
/// empty name (1 byte), payload length varint, payload.
fn event_with_body_len(body_len: usize) -> ToWorker {
    let mut payload_len = body_len - 2;
    while 2 + varint_len(payload_len) + payload_len > body_len {
        payload_len -= 1;
    }
    let msg = ToWorker::Event {
        name: String::new(),
        payload: vec![0xab; payload_len],
    };
    assert_eq!(
        frame(&msg, usize::MAX).unwrap().len() - HEADER_LEN,
        body_len,
        "no Event has a body of exactly {body_len} bytes"
    );
    msg
}

fn assert_limit_holds(max: usize) {
    // Encode: exactly the limit passes, one byte more fails and leaves `out` as it was.
    let at_limit = event_with_body_len(max);
    let over_limit = event_with_body_len(max + 1);
    let mut out = frame(&ToSupervisor::Ready, max).unwrap();
    let before = out.clone();
    match encode_frame(&over_limit, &mut out, max) {
        Err(Error::FrameTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(out, before, "a failed encode changed the buffer");
    encode_frame(&at_limit, &mut out, max).unwrap();
    assert_eq!(out.len(), before.len() + HEADER_LEN + max);

    // Decode: the frame of exactly the limit decodes.
    let mut decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::from(&out[before.len()..]);
    assert_eq!(
        decoder.decode::<ToWorker>(&mut buf).unwrap(),
        Some(at_limit)
    );
    assert!(buf.is_empty());

    // Decode: a header announcing one byte more is rejected at once.
    let mut buf = BytesMut::from(&u32::try_from(max + 1).unwrap().to_le_bytes()[..]);
    match decoder.decode::<ToWorker>(&mut buf) {
        Err(Error::FrameTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
}

#[test]
fn small_limit_passes_exactly_and_rejects_one_more() {
    assert_limit_holds(300);
}

#[test]
fn default_limit_passes_exactly_and_rejects_one_more() {
    assert_eq!(DEFAULT_MAX_FRAME_LEN, 16 * 1024 * 1024);
    assert_limit_holds(DEFAULT_MAX_FRAME_LEN);
}

#[test]
fn forged_length_reserves_nothing() {
    for forged in [DEFAULT_MAX_FRAME_LEN as u32 + 1, u32::MAX] {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&forged.to_le_bytes());
        buf.extend_from_slice(&[0; 8]);
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let result = decoder.decode::<ToSupervisor>(&mut buf);
        assert!(
            matches!(result, Err(Error::FrameTooLarge { len, .. }) if len == forged as usize),
            "header {forged}: {result:?}"
        );
        assert!(buf.capacity() <= 64, "reserved {} bytes", buf.capacity());
    }
}

/// The limit is on the body: a 4-byte header comes on top of it.
#[test]
fn limit_excludes_the_header() {
    let bytes = frame(&ToSupervisor::Ready, 1).unwrap();
    assert_eq!(bytes, [1, 0, 0, 0, 1]);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        FrameDecoder::new(1)
            .decode::<ToSupervisor>(&mut buf)
            .unwrap(),
        Some(ToSupervisor::Ready)
    );
    assert!(matches!(
        frame(&ToSupervisor::Ready, 0),
        Err(Error::FrameTooLarge { len: 1, max: 0 })
    ));
}
