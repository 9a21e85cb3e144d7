//! Arbitrary scripts run through EVAL (and arbitrary libraries through FUNCTION LOAD and
//! FCALL) against a real server state: whatever a client's script does, the replica must not
//! crash, and it must answer the next command. Scripts are stopped after 100 ms
//! (`--script-time-limit-ms`) and may use 64 MB (`--script-memory-limit`).
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use clap::Parser;
use libfuzzer_sys::fuzz_target;
use syncmesh_replica::config::Config;
use syncmesh_replica::resp::{Protocol, Reply};
use syncmesh_replica::server::client::{Client, ClientInfo};
use syncmesh_replica::server::Server;

fn server() -> &'static Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER.get_or_init(|| {
        Server::new(Config::parse_from([
            "syncmesh-replica",
            "--script-time-limit-ms",
            "100",
            "--script-memory-limit",
            "64mb",
        ]))
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let addr = "127.0.0.1:1".parse().unwrap();
    let mut client = Client::new(Arc::new(ClientInfo::new(1, addr, addr)), true);
    let mut out = Reply::new(Protocol::Resp2);
    // The first byte picks how the script runs; the rest is its source.
    let (mode, body) = data.split_first().unwrap_or((&0, b""));
    let body = Bytes::copy_from_slice(body);
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    let commands: Vec<Vec<Bytes>> = match mode % 4 {
        0 => vec![vec![b("EVAL"), body, b("2"), b("k1"), b("k2"), b("a1")]],
        1 => vec![vec![b("EVAL_RO"), body, b("1"), b("k1"), b("a1")]],
        2 => vec![vec![b("HELLO"), b("3")], vec![b("EVAL"), body, b("0")], vec![b("HELLO"), b("2")]],
        _ => {
            let mut lib = b"#!lua name=fuzz\n".to_vec();
            lib.extend_from_slice(&body);
            vec![
                vec![b("FUNCTION"), b("LOAD"), b("REPLACE"), Bytes::from(lib)],
                vec![b("FCALL"), b("f"), b("1"), b("k1"), b("a1")],
            ]
        }
    };
    for args in &commands {
        server.execute(&mut client, &mut out, args);
        out.buf.clear();
    }
    server.execute(&mut client, &mut out, &[b("PING")]);
    assert_eq!(&out.buf[..], b"+PONG\r\n", "the replica answers after the script");
});
