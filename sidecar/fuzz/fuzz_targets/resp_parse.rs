//! The request parser must never panic, must never return a request it did not consume, and
//! must give the same requests however the input is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use syncmesh_replica::resp::parse::split_args;
use syncmesh_replica::resp::{ProtocolError, RequestLimits, RequestParser};

type Requests = Vec<Vec<Vec<u8>>>;

fn parse(pieces: &[&[u8]], limits: &RequestLimits) -> (Requests, Option<ProtocolError>) {
    let mut parser = RequestParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        parser.feed(piece);
        loop {
            let before = parser.buffered();
            match parser.next_request(limits) {
                Ok(Some(args)) => {
                    assert!(parser.buffered() < before, "a request was returned without consuming input");
                    out.push(args.iter().map(|a| a.to_vec()).collect());
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let limits = RequestLimits { max_bulk_len: 1 << 20, auth_required: data.first() == Some(&b'a') };
    let whole = parse(&[data], &limits);
    let split = data.len() / 3;
    let pieces: Vec<&[u8]> = data.chunks(split.max(1)).collect();
    assert_eq!(parse(&pieces, &limits), whole, "chunking changed the result");
    let _ = split_args(data);
});
