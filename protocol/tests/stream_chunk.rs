//! A `StreamData` frame of the largest chunk a sender uses fits the frame
//! limit it was chosen for, in both directions.

use lpm_protocol::{
    frame, stream_chunk, ToSupervisor, ToWorker, DEFAULT_MAX_FRAME_LEN, HEADER_LEN, STREAM_CHUNK,
};

#[test]
fn the_largest_chunk_fits_the_frame_limit() {
    let id = uuid::Uuid::from_u128(u128::MAX);
    for limit in [
        40,
        100,
        1_000,
        STREAM_CHUNK,
        STREAM_CHUNK + 10,
        DEFAULT_MAX_FRAME_LEN,
    ] {
        let data = vec![0xab; stream_chunk(limit)];
        let up = frame(
            &ToSupervisor::StreamData {
                id,
                data: data.clone(),
            },
            limit,
        )
        .unwrap_or_else(|e| panic!("limit {limit}: {e}"));
        let down = frame(&ToWorker::StreamData { id, data }, limit)
            .unwrap_or_else(|e| panic!("limit {limit}: {e}"));
        assert!(up.len() - HEADER_LEN <= limit && down.len() - HEADER_LEN <= limit);
    }
    assert_eq!(stream_chunk(DEFAULT_MAX_FRAME_LEN), STREAM_CHUNK);
    assert_eq!(stream_chunk(0), 1, "never 0: a stream always moves");
}
