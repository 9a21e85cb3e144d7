//! The mesh decoder must reject any byte string cleanly: frames, updates and snapshots.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use syncmesh_replica::mesh::wire::{self, Decoder, Message};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut decoder = Decoder::default();
    while let Ok(Some(msg)) = wire::decode(&mut buf) {
        if let Message::Updates(updates) = msg {
            for u in updates {
                let _ = decoder.decode(u);
            }
        }
    }
    let _ = wire::decode_snapshot(data);
});
