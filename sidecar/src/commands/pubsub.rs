//! Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.

use bytes::Bytes;

use super::flags::*;
use super::{cmd, unknown_subcommand, CmdResult, Command, Ctx};

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    cmd("subscribe", -2, PUBSUB | LOADING | STALE | SUBSCRIBED_OK, (0, 0, 0), "pubsub", "Listens for messages published to channels.", subscribe),
    cmd("unsubscribe", -1, PUBSUB | LOADING | STALE | SUBSCRIBED_OK, (0, 0, 0), "pubsub", "Stops listening to messages posted to channels.", subscribe),
    cmd("psubscribe", -2, PUBSUB | LOADING | STALE | SUBSCRIBED_OK, (0, 0, 0), "pubsub", "Listens for messages published to channels that match one or more patterns.", subscribe),
    cmd("punsubscribe", -1, PUBSUB | LOADING | STALE | SUBSCRIBED_OK, (0, 0, 0), "pubsub", "Stops listening to messages published to channels that match one or more patterns.", subscribe),
    cmd("publish", 3, PUBSUB | LOADING | STALE | FAST, (0, 0, 0), "pubsub", "Posts a message to a channel.", publish),
    cmd("pubsub", -2, PUBSUB | LOADING | STALE, (0, 0, 0), "pubsub", "A container for Pub/Sub commands.", pubsub),
];

/// The four (un)subscribe commands: one reply per channel or pattern, as push messages.
fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let pattern = name.starts_with('p');
    let sink = ctx.client.subscriber_sink();
    let id = ctx.client.id;
    let mut hub = ctx.server.pubsub.lock();
    let kind: &[u8] = name.as_bytes();
    if name.ends_with("unsubscribe") {
        let targets: Vec<Bytes> = if args.len() > 1 {
            args[1..].to_vec()
        } else if pattern {
            ctx.client.patterns.iter().cloned().collect()
        } else {
            ctx.client.channels.iter().cloned().collect()
        };
        if targets.is_empty() {
            ctx.out.push(3);
            ctx.out.bulk(kind);
            ctx.out.null();
            ctx.out.int(ctx.client.subscriptions() as i64);
        }
        for t in targets {
            if pattern {
                hub.punsubscribe(&t, id);
                ctx.client.patterns.remove(&t);
            } else {
                hub.unsubscribe(&t, id);
                ctx.client.channels.remove(&t);
            }
            ctx.out.push(3);
            ctx.out.bulk(kind);
            ctx.out.bulk(&t);
            ctx.out.int(ctx.client.subscriptions() as i64);
        }
    } else {
        for t in &args[1..] {
            if pattern {
                hub.psubscribe(t, &sink);
                ctx.client.patterns.insert(t.clone());
            } else {
                hub.subscribe(t, &sink);
                ctx.client.channels.insert(t.clone());
            }
            ctx.out.push(3);
            ctx.out.bulk(kind);
            ctx.out.bulk(t);
            ctx.out.int(ctx.client.subscriptions() as i64);
        }
    }
    ctx.client.info.subscriptions.store(ctx.client.subscriptions(), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn publish(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let n = ctx.server.publish(&args[1], &args[2]);
    ctx.out.int(n as i64);
    Ok(())
}

fn pubsub(ctx: &mut Ctx, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let hub = ctx.server.pubsub.lock();
    match sub.as_str() {
        "channels" if args.len() <= 3 => {
            let list = hub.channels(args.get(2).map(|p| &p[..]));
            ctx.out.array(list.len());
            list.iter().for_each(|c| ctx.out.bulk(c));
        }
        "numsub" => {
            ctx.out.map(args.len() - 2);
            for c in &args[2..] {
                ctx.out.bulk(c);
                ctx.out.int(hub.numsub(c) as i64);
            }
        }
        "numpat" if args.len() == 2 => ctx.out.int(hub.numpat() as i64),
        "shardchannels" => ctx.out.array(0),
        "shardnumsub" => {
            ctx.out.map(args.len() - 2);
            for c in &args[2..] {
                ctx.out.bulk(c);
                ctx.out.int(0);
            }
        }
        "help" => {
            super::reply_help(ctx, &["PUBSUB <CHANNELS|NUMSUB|NUMPAT|HELP>"]);
        }
        "channels" => return Err(super::sub_syntax_error(args)),
        "numpat" => return Err(super::sub_arity_error(args)),
        _ => return Err(unknown_subcommand(args)),
    }
    Ok(())
}
