//! The request parser must never panic, and must never return a request it did not consume.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncmesh_replica::resp::parse::split_args;
use syncmesh_replica::resp::{parse_request, RequestLimits};

fuzz_target!(|data: &[u8]| {
    let limits = RequestLimits { max_bulk_len: 1 << 20, max_multibulk_len: 1 << 16 };
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match parse_request(&mut buf, &limits) {
            Ok(Some(_)) => assert!(buf.len() < before, "a request was returned without consuming input"),
            Ok(None) | Err(_) => break,
        }
    }
    let _ = split_args(data);
});
