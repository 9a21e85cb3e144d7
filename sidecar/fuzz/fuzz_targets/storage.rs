//! The data directory's readers must take any bytes without panicking: a log segment (header,
//! records, entries) and a snapshot file, as a crash, a bad disk or a stray file can leave them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncmesh_replica::storage::{log, record, snapshot};

fuzz_target!(|data: &[u8]| {
    let _ = log::decode_header(data);
    let body = data.get(log::HEADER_LEN..).unwrap_or(data);
    let scanned = log::scan(body);
    assert!(scanned.good_len <= body.len());
    let mut reader = record::Reader::new(data);
    for payload in reader.by_ref() {
        let _ = log::decode_record(payload);
    }
    assert!(reader.end().is_some());
    let _ = snapshot::decode(data);
    // Past the checksums: the entry decoder on its own, and the input as one well-framed record.
    let _ = log::decode_record(data);
    let mut framed = Vec::new();
    record::encode(data, &mut framed);
    let scanned = log::scan(&framed);
    assert!(scanned.entries.len() <= 1);
});
