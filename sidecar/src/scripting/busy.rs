//! Answering clients while a script runs past the busy threshold, without the store lock:
//! `SCRIPT KILL`, `FUNCTION KILL`, `FUNCTION STATS` and `SHUTDOWN NOSAVE` work, everything else
//! gets `-BUSY`, as in Redis.

use bytes::Bytes;

use super::status::{Kill, Running};
use crate::resp::Reply;
use crate::server::client::Client;
use crate::server::Server;

pub const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

fn busy_text(kind: Running) -> &'static str {
    match kind {
        Running::Script => BUSY_SCRIPT,
        Running::Function => BUSY_FUNCTION,
    }
}

/// `SCRIPT KILL` (`function` false) / `FUNCTION KILL` (true): the reply.
pub fn kill(server: &Server, function: bool, out: &mut Reply) {
    match server.scripts.request_kill(function) {
        Kill::Requested => out.ok(),
        Kill::NothingRuns => out.error(NOTBUSY),
        Kill::AlreadyWrote => out.error(UNKILLABLE),
        Kill::WrongKind(kind) => out.error(busy_text(kind)),
    }
}

/// `FUNCTION STATS`, from what the status knows.
pub fn function_stats(server: &Server, out: &mut Reply) {
    out.map(2);
    out.bulk(b"running_script");
    match server
        .scripts
        .describe(server.now_ms())
        .filter(|_| server.scripts.running() == Some(Running::Function))
    {
        Some((name, command, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for a in &command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(ms as i64);
        }
        None => out.null(),
    }
    let (libraries, functions) = *server.scripts.counts.lock();
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
}

/// Replies to a batch of commands while a script is busy; returns how many were answered (0:
/// the script just ended, run the batch normally).
pub fn answer(server: &Server, client: &mut Client, out: &mut Reply, batch: &[Vec<Bytes>]) -> usize {
    let Some(kind) = server.scripts.running() else { return 0 };
    for args in batch {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let sub = args.get(1).map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default();
        match (name.as_str(), sub.as_str(), args.len()) {
            ("script", "kill", 2) => kill(server, false, out),
            ("function", "kill", 2) => kill(server, true, out),
            ("function", "stats", 2) => function_stats(server, out),
            ("shutdown", "nosave", _) => {
                tracing::warn!("SHUTDOWN NOSAVE while a script is busy: exiting now");
                std::process::exit(0);
            }
            ("quit", _, _) => {
                out.ok();
                client.close = true;
                return batch.len();
            }
            _ => out.error(busy_text(kind)),
        }
    }
    batch.len()
}
