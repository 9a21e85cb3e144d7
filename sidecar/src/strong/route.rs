//! Which commands run through the strong keys' group: those whose keys all match a
//! `--strong-keys` pattern. A command with no key runs here; one that mixes strong keys with
//! other keys is refused (the two kinds live in different places and cannot change atomically
//! together).

use bytes::Bytes;

use crate::commands::{eq_ic, glob_match, key_args, registry, Command};

/// `--strong-keys`: glob patterns, as `KEYS` reads them.
#[derive(Clone, Debug, Default)]
pub struct Patterns(Vec<Vec<u8>>);

/// Where a command line runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// On this replica's CRDT keyspace, as always.
    Local,
    /// Through the group: every key it names is strong.
    Strong,
    /// It names strong keys and other keys.
    Mixed,
}

/// The error for a command that mixes strong and other keys (Redis Cluster answers CROSSSLOT for
/// keys that live in different places; so do we).
pub const MIXED: &str = "CROSSSLOT Keys in request mix strong keys (--strong-keys) with other keys: a command, transaction or script must touch only strong keys or only other keys";

impl Patterns {
    pub fn new(patterns: &[String]) -> Patterns {
        Patterns(patterns.iter().filter(|p| !p.is_empty()).map(|p| p.as_bytes().to_vec()).collect())
    }

    /// The patterns as given, comma-separated.
    pub fn text(&self) -> String {
        self.0.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect::<Vec<_>>().join(",")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, key: &[u8]) -> bool {
        self.0.iter().any(|p| glob_match(p, key, false))
    }

    /// Where the keys of one command line send it.
    pub fn route_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Route {
        let (mut strong, mut other) = (false, false);
        for k in keys {
            if self.matches(k) {
                strong = true;
            } else {
                other = true;
            }
        }
        match (strong, other) {
            (true, true) => Route::Mixed,
            (true, false) => Route::Strong,
            _ => Route::Local,
        }
    }

    /// Where one command line runs. Arguments that do not parse (a bad `numkeys`) run here and
    /// get the command's own error.
    pub fn route(&self, cmd: &Command, args: &[Bytes]) -> Route {
        match key_args(cmd, args) {
            Ok(keys) => self.route_keys(keys.into_iter().map(|k| &k[..])),
            Err(_) => Route::Local,
        }
    }

    /// Where the commands queued by `MULTI` run at `EXEC`.
    pub fn route_transaction(&self, queued: &[Vec<Bytes>]) -> Route {
        let mut keys: Vec<&[u8]> = Vec::new();
        for args in queued {
            let Some((_, cmd)) = registry().get(&args[0]) else { continue };
            if let Ok(k) = key_args(cmd, args) {
                keys.extend(k.into_iter().map(|k| &k[..]));
            }
        }
        self.route_keys(keys)
    }
}

/// Commands that never go through the group even when their arguments match a pattern: they
/// are about this replica (its connections, its script cache) or about the whole keyspace.
pub fn always_local(cmd: &Command, args: &[Bytes]) -> bool {
    matches!(cmd.name, "object" | "memory" | "debug")
        || (cmd.name == "xinfo" && args.get(1).is_some_and(|a| eq_ic(a, "help")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn route(p: &Patterns, s: &str) -> Route {
        let args = line(s);
        let (_, cmd) = registry().get(&args[0]).unwrap();
        p.route(cmd, &args)
    }

    #[test]
    fn commands_route_by_their_keys() {
        let p = Patterns::new(&["jobs:*".into(), "lock:*".into(), "celery".into()]);
        assert_eq!(route(&p, "LPUSH jobs:a x"), Route::Strong);
        assert_eq!(route(&p, "BRPOP jobs:a jobs:b 0"), Route::Strong);
        assert_eq!(route(&p, "BRPOP jobs:a other 0"), Route::Mixed);
        assert_eq!(route(&p, "SET session:1 x"), Route::Local);
        assert_eq!(route(&p, "SET lock:orders me NX PX 3000"), Route::Strong);
        assert_eq!(route(&p, "RPUSH celery x"), Route::Strong);
        assert_eq!(route(&p, "RPUSH celery2 x"), Route::Local);
        assert_eq!(route(&p, "MSET lock:a 1 other 2"), Route::Mixed);
        assert_eq!(route(&p, "BLMOVE jobs:a jobs:done LEFT RIGHT 0"), Route::Strong);
        assert_eq!(route(&p, "BLMOVE jobs:a done LEFT RIGHT 0"), Route::Mixed);
        assert_eq!(route(&p, "BLMPOP 0 2 jobs:a jobs:b LEFT"), Route::Strong);
        assert_eq!(route(&p, "XREADGROUP GROUP streams c COUNT 1 BLOCK 10 STREAMS jobs:s >"), Route::Strong);
        assert_eq!(route(&p, "XREAD COUNT 1 STREAMS jobs:s other 0 0"), Route::Mixed);
        assert_eq!(route(&p, "EVAL x 2 lock:a lock:b arg"), Route::Strong);
        assert_eq!(route(&p, "EVAL x 1 lock:a other"), Route::Strong, "arguments are not keys");
        assert_eq!(route(&p, "EVAL x 0"), Route::Local);
        assert_eq!(route(&p, "FCALL f 2 lock:a x"), Route::Mixed);
        assert_eq!(route(&p, "PING"), Route::Local);
        assert_eq!(route(&p, "XGROUP CREATE jobs:s g $"), Route::Strong);
        assert_eq!(route(&p, "LMPOP notanumber jobs:a LEFT"), Route::Local, "its own error, here");
    }

    #[test]
    fn transactions_route_by_all_their_keys() {
        let p = Patterns::new(&["q".into()]);
        assert_eq!(p.route_transaction(&[line("LPUSH q a"), line("LLEN q")]), Route::Strong);
        assert_eq!(p.route_transaction(&[line("LPUSH q a"), line("INCR n")]), Route::Mixed);
        assert_eq!(p.route_transaction(&[line("PING"), line("INCR n")]), Route::Local);
        assert!(Patterns::new(&[String::new()]).is_empty());
    }
}
