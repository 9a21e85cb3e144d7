//! Arbitrary requests run against a real server state: no command may panic, whatever its
//! arguments, and the store must stay consistent enough to compute its digest.
#![no_main]

use std::sync::{Arc, OnceLock};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use syncmesh_replica::config::Config;
use syncmesh_replica::resp::{Protocol, Reply, RequestLimits, RequestParser};
use syncmesh_replica::server::client::{Client, ClientInfo};
use syncmesh_replica::server::Server;

fn server() -> &'static Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER.get_or_init(|| Server::new(Config::parse_from(["syncmesh-replica"])))
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let addr = "127.0.0.1:1".parse().unwrap();
    let mut client = Client::new(Arc::new(ClientInfo::new(1, addr, addr)), true);
    let mut out = Reply::new(Protocol::Resp2);
    let mut parser = RequestParser::with_input(data);
    let limits = RequestLimits { max_bulk_len: 1 << 20, auth_required: false };
    let mut budget = 64;
    while let Ok(Some(args)) = parser.next_request(&limits) {
        if args.is_empty() {
            continue;
        }
        // Commands that block or change the server itself are not interesting here.
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        if ["config", "client", "debug", "quit"].contains(&name.as_str()) {
            continue;
        }
        server.execute(&mut client, &mut out, &args);
        out.clear();
        budget -= 1;
        if budget == 0 {
            break;
        }
    }
    let store = server.store.lock();
    let _ = store.replica.digest(0);
});
