//! What a client can make the replica hold or spend, measured on a real process: parsing work
//! linear in a request's size however it is split, large values stored once, read buffers given
//! back when idle, deletes of large values off the command path.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ReplicaProcess;

fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn connect(r: &ReplicaProcess) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", r.port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// Reads one line-terminated reply (integers, simple strings, errors).
fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        assert_eq!(s.read(&mut b).expect("reply"), 1, "connection closed");
        out.push(b[0]);
    }
    out
}

/// Reads a bulk reply of `len` bytes, checking every byte is `byte`.
fn read_bulk(s: &mut TcpStream, len: usize, byte: u8) {
    assert_eq!(read_line(s), format!("${len}\r\n").into_bytes());
    let mut left = len + 2;
    let mut buf = vec![0u8; 1 << 20];
    let mut seen: Vec<u8> = Vec::new();
    while left > 0 {
        let n = s.read(&mut buf[..left.min(1 << 20)]).expect("bulk");
        assert!(n > 0, "connection closed in a bulk reply");
        seen.extend(buf[..n].iter().filter(|&&c| c != byte).take(3).copied());
        left -= n;
    }
    assert_eq!(seen, b"\r\n", "the value came back changed");
}

/// A field of /proc/PID/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("field")
}

/// CPU time (user + system) the process has used.
fn cpu_time(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = text.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// The replica's CPU time for one RPUSH of `n` arguments sent in 4 KiB pieces.
fn dripped_rpush_cpu(r: &ReplicaProcess, key: &str, n: usize) -> Duration {
    let elements: Vec<Vec<u8>> = (0..n).map(|i| format!("element:{i:08}").into_bytes()).collect();
    let mut args: Vec<&[u8]> = vec![b"RPUSH", key.as_bytes()];
    args.extend(elements.iter().map(|e| e.as_slice()));
    let request = encode(&args);
    let mut s = connect(r);
    let before = cpu_time(r.pid());
    for piece in request.chunks(4096) {
        s.write_all(piece).unwrap();
        // Each piece its own read on the server side.
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_eq!(read_line(&mut s), format!(":{n}\r\n").into_bytes());
    cpu_time(r.pid()) - before
}

#[test]
fn a_dripped_large_command_costs_time_linear_in_its_size() {
    let r = ReplicaProcess::start(&[]);
    let small = dripped_rpush_cpu(&r, "l100k", 100_000);
    let large = dripped_rpush_cpu(&r, "l400k", 400_000);
    eprintln!("CPU for 100k arguments: {small:?}, for 400k: {large:?}");
    // Linear: about 4x (re-parsing from byte 0 on every read is quadratic: about 16x, and
    // seconds of CPU for 400k). Generous bounds for a loaded 2-core machine.
    assert!(large < Duration::from_secs(3), "400k arguments took {large:?} of CPU");
    assert!(
        large.as_millis() < 9 * small.as_millis().max(50),
        "not linear: {small:?} for 100k, {large:?} for 400k"
    );
}

#[test]
fn a_large_value_is_held_once() {
    const SIZE: usize = 96 << 20;
    let r = ReplicaProcess::start(&[]);
    let pid = r.pid();
    let base = proc_status(pid, "VmRSS");
    let mut s = connect(&r);
    s.write_all(format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${SIZE}\r\n").as_bytes()).unwrap();
    let piece = vec![b'v'; 1 << 20];
    for _ in 0..SIZE >> 20 {
        s.write_all(&piece).unwrap();
    }
    s.write_all(b"\r\n").unwrap();
    assert_eq!(read_line(&mut s), b"+OK\r\n");
    s.write_all(&encode(&[b"GET", b"big"])).unwrap();
    read_bulk(&mut s, SIZE, b'v');
    s.write_all(&encode(&[b"GETRANGE", b"big", b"-3", b"-1"])).unwrap();
    assert_eq!(read_line(&mut s), b"$3\r\n");
    let peak = proc_status(pid, "VmHWM") - base;
    eprintln!("peak RSS above start: {} MB for a {} MB value", peak >> 20, SIZE >> 20);
    // One copy of the value (the read buffer, the keyspace and the reply share it), plus
    // allocator slack; a second copy anywhere would pass 2x.
    assert!(peak < SIZE as u64 * 13 / 10, "peak {} MB for a {} MB value", peak >> 20, SIZE >> 20);
}

#[test]
fn idle_clients_give_their_read_buffers_back() {
    let r = ReplicaProcess::start(&[]);
    // Each client sends a 4 MB request made of small arguments (they are read into the client's
    // read buffer, which grows to hold the request), then stays idle.
    let elements: Vec<Vec<u8>> = (0..200_000).map(|i| format!("e{i:018}").into_bytes()).collect();
    let mut clients = Vec::new();
    for c in 0..5 {
        let key = format!("idle{c}");
        let mut args: Vec<&[u8]> = vec![b"SADD", key.as_bytes()];
        args.extend(elements.iter().map(|e| e.as_slice()));
        let mut s = connect(&r);
        s.write_all(&encode(&args)).unwrap();
        assert_eq!(read_line(&mut s), b":200000\r\n");
        clients.push(s);
    }
    // Idle for longer than the resize delay: what the connections still hold is what closing
    // them gives back.
    std::thread::sleep(Duration::from_secs(5));
    let with_clients = used_memory(&r);
    for s in &mut clients {
        s.write_all(b"PING\r\n").unwrap();
        assert_eq!(read_line(s), b"+PONG\r\n");
    }
    drop(clients);
    wait_for(|| r.info_field("clients", "connected_clients") == "1", "the clients gone");
    let without = used_memory(&r);
    eprintln!("used_memory with the idle clients {} MB, without {} MB", with_clients >> 20, without >> 20);
    assert!(
        with_clients.saturating_sub(without) < 4 << 20,
        "5 idle clients held {} MB of read buffers",
        with_clients.saturating_sub(without) >> 20
    );
}

fn used_memory(r: &ReplicaProcess) -> u64 {
    r.info_field("memory", "used_memory").parse().unwrap()
}

fn fill_list(con: &mut redis::Connection, key: &str, n: usize) {
    let batch: Vec<String> = (0..n.min(1000)).map(|i| format!("element-{i}")).collect();
    let mut pipe = redis::pipe();
    for _ in 0..n.div_ceil(1000) {
        pipe.cmd("RPUSH").arg(key).arg(&batch).ignore();
    }
    let _: () = pipe.query(con).unwrap();
}

#[test]
fn unlink_frees_large_values_in_the_background() {
    let r = ReplicaProcess::start(&[]);
    let mut con = r.client();
    let freed = |r: &ReplicaProcess| r.info_field("stats", "lazyfreed_objects").parse::<u64>().unwrap();
    let setting: Vec<String> =
        redis::cmd("CONFIG").arg("GET").arg("lazyfree-lazy-user-del").query(&mut con).unwrap();
    assert_eq!(setting, ["lazyfree-lazy-user-del", "no"]);

    fill_list(&mut con, "small", 10);
    let n: i64 = redis::cmd("UNLINK").arg("small").query(&mut con).unwrap();
    assert_eq!((n, freed(&r)), (1, 0), "a small value is freed in place");

    fill_list(&mut con, "list", 200_000);
    let started = Instant::now();
    let n: i64 = redis::cmd("UNLINK").arg("list").query(&mut con).unwrap();
    let unlink_took = started.elapsed();
    assert_eq!(n, 1);
    let exists: i64 = redis::cmd("EXISTS").arg("list").query(&mut con).unwrap();
    assert_eq!(exists, 0);
    wait_for(|| freed(&r) == 1, "UNLINK's list freed in the background");

    // DEL frees in place by default, in the background with lazyfree-lazy-user-del yes.
    fill_list(&mut con, "list", 200_000);
    let started = Instant::now();
    let _: i64 = redis::cmd("DEL").arg("list").query(&mut con).unwrap();
    let del_took = started.elapsed();
    assert_eq!(freed(&r), 1);
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("lazyfree-lazy-user-del").arg("yes").query(&mut con).unwrap();
    fill_list(&mut con, "list", 200_000);
    let _: i64 = redis::cmd("DEL").arg("list").query(&mut con).unwrap();
    wait_for(|| freed(&r) == 2, "DEL's list freed in the background");

    // A large string too.
    let _: () = redis::cmd("SET").arg("s").arg(vec![b's'; 1 << 20]).query(&mut con).unwrap();
    let _: i64 = redis::cmd("UNLINK").arg("s").query(&mut con).unwrap();
    wait_for(|| freed(&r) == 3, "a large string freed in the background");
    eprintln!("UNLINK of 200k elements: {unlink_took:?}; DEL in place: {del_took:?}");
    assert_eq!(r.info_field("memory", "lazyfree_pending_objects"), "0");
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
