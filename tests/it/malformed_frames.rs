//! Bad input on a raw socket: each gets Kafka's error code, or only that connection is closed,
//! and the broker goes on serving everyone else. Requests are encoded by hand here, so these
//! tests do not trust the broker's own codec.

use std::io::Write;

use crate::harness::Broker;
use crate::raw::{Reader, batch, closed, connect, create_topic, fix_crc, produce, read_frame, request, still_serves};

#[test]
fn bad_frames_close_only_their_connection() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("absurd length", vec![0x7f, 0xff, 0xff, 0xff]),
        ("negative length", vec![0xff, 0xff, 0xff, 0xfe]),
        ("frame shorter than a header", vec![0, 0, 0, 4, 0, 18, 0, 0]),
        ("client id longer than the frame", {
            let mut f = request(18, 0, 5, &[]);
            f[12..14].copy_from_slice(&500i16.to_be_bytes());
            f
        }),
        ("unknown api key", request(9999, 0, 5, &[])),
        ("unsupported Metadata version", request(3, 99, 5, &[])),
        ("garbage Produce body", request(0, 3, 5, &[0xde, 0xad, 0xbe, 0xef, 1, 2, 3])),
        // 14 bytes in all: header (api 3, v1, correlation, null client id) and an array count
        // of 2^30 topics. Must be refused without allocating for them.
        ("2^30 array count in a 14-byte frame", {
            let mut f = vec![0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 5, 0xff, 0xff];
            f.extend_from_slice(&0x4000_0000i32.to_be_bytes());
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut stream = connect(&broker);
        stream.write_all(&bytes).expect("send");
        // The broker may answer with an error first; either way it must not stay stuck and
        // must end the connection without a well-formed success.
        let response = read_frame(&mut stream);
        if let Some(frame) = &response {
            panic!("{what}: expected the connection to close, got a {}-byte response", frame.len());
        }
        assert!(closed(&mut stream), "{what}: connection still open");
        still_serves(&broker);
    }
    assert!(broker.is_running(), "the broker process survived every bad frame");
}

#[test]
fn an_unsupported_api_versions_version_gets_our_ranges() {
    let broker = Broker::start(&["--cores", "1"]);
    let mut stream = connect(&broker);
    stream.write_all(&request(18, 99, 42, &[])).expect("send");
    let frame = read_frame(&mut stream).expect("a v0 ApiVersions response");
    let mut r = Reader(&frame);
    assert_eq!(r.i32(), 42);
    assert_eq!(r.i16(), 35, "UNSUPPORTED_VERSION");
    let count = r.i32();
    let mut apis = Vec::new();
    for _ in 0..count {
        apis.push((r.i16(), r.i16(), r.i16()));
    }
    assert!(apis.iter().any(|&(key, min, max)| key == 18 && min == 0 && max >= 3), "{apis:?}");
    assert!(apis.iter().any(|&(key, _, max)| key == 1 && max >= 4), "Fetch >= 4 advertised: {apis:?}");
    still_serves(&broker);
}

#[test]
fn bad_batches_get_kafka_error_codes() {
    let broker = Broker::start(&["--cores", "2"]);
    create_topic(&broker, "checked");
    assert_eq!(produce(&broker, "checked", 0, &batch(3, 10)), 0, "a good batch");

    let mut crc = batch(3, 10);
    let last = crc.len() - 1;
    crc[last] ^= 1;
    assert_eq!(produce(&broker, "checked", 0, &crc), 2, "CRC mismatch: CORRUPT_MESSAGE");

    let mut magic = batch(3, 10);
    magic[16] = 1;
    assert_eq!(produce(&broker, "checked", 1, &magic), 87, "magic 1 in Produce v3: INVALID_RECORD");

    let mut count = batch(3, 10);
    count[57..61].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut count);
    assert_eq!(produce(&broker, "checked", 0, &count), 87, "record count mismatch: INVALID_RECORD");

    assert_eq!(produce(&broker, "checked", 0, &batch(3, 600_000)), 10, "oversized: MESSAGE_TOO_LARGE");
    assert_eq!(produce(&broker, "no-such-topic", 0, &batch(1, 1)), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(produce(&broker, "checked", 7, &batch(1, 1)), 3, "unknown partition");
    let mut truncated = batch(3, 10);
    truncated.truncate(40);
    assert_eq!(produce(&broker, "checked", 0, &truncated), 2, "truncated batch: CORRUPT_MESSAGE");
    assert_eq!(produce(&broker, "checked", 0, &batch(2, 10)), 0, "and the partition still takes appends");
    still_serves(&broker);
}
