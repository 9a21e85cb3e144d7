"""Errors common to every command: wrong arity, unknown commands, bad integers and floats.

The arity cases are derived from redis-server's own COMMAND INFO table: for each command
in scope, one call with too few arguments and (for fixed arity) one with too many."""

import pytest

from harness import Err, call, make_client

SCOPE = """
ping echo hello auth select quit reset client info dbsize time command config memory object flushdb flushall
del unlink exists type touch expire pexpire expireat pexpireat ttl pttl expiretime pexpiretime persist keys scan
randomkey rename renamenx copy
get set setnx setex psetex getset getdel getex mget mset msetnx append strlen getrange setrange incr incrby decr
decrby incrbyfloat setbit getbit bitcount bitpos bitop
hset hsetnx hmset hget hmget hdel hexists hlen hkeys hvals hgetall hincrby hincrbyfloat hstrlen hrandfield hscan
sadd srem smembers sismember smismember scard spop srandmember smove sinter sintercard sinterstore sunion
sunionstore sdiff sdiffstore sscan
zadd zrem zscore zmscore zincrby zcard zcount zlexcount zrange zrangestore zrangebyscore zrevrangebyscore
zrangebylex zrevrangebylex zrevrange zrank zrevrank zpopmin zpopmax zremrangebyscore zremrangebyrank
zremrangebylex zunionstore zinterstore zdiffstore zunion zinter zdiff zintercard zrandmember zscan
pfadd pfcount pfmerge
multi exec discard watch unwatch
""".split()

SUBCOMMANDS = ["client|id", "client|setname", "client|getname", "client|list", "client|info", "client|kill",
               "client|no-evict", "config|get", "config|set", "config|resetstat", "memory|usage",
               "object|encoding", "object|freq", "object|idletime", "object|refcount", "command|count",
               "command|info", "command|docs", "command|list", "command|getkeys"]


def _arity_table():
    """{name: arity} from a throw-away redis-server (the oracle's view)."""
    import shutil
    import subprocess
    import tempfile
    import harness
    with tempfile.TemporaryDirectory() as d:
        s = harness.Server("redis", "arity-probe", d)
        s.start()
        try:
            c = make_client(s.port)
            table = {}
            for entry in call(c, "COMMAND", "INFO", *SCOPE):
                assert entry is not None
                table[entry[0].decode()] = entry[1]
                for sub in entry[9] if len(entry) > 9 else []:
                    table[sub[0].decode()] = sub[1]
            c.close()
            return table
        finally:
            s.stop()


ARITY = _arity_table()


def _too_few(name, arity):
    words = name.split("|")
    n = abs(arity) - 1                 # one argument short of the minimum
    return words + ["x"] * (n - len(words))


def _too_many(name, arity):
    words = name.split("|")
    return words + ["x"] * (arity + 1 - len(words))


ARITY_CASES = []
for _name in SCOPE + SUBCOMMANDS:
    _a = ARITY[_name]
    if abs(_a) > len(_name.split("|")):
        ARITY_CASES.append(pytest.param(_too_few(_name, _a), id=f"{_name}-too-few"))
    if _a > 0 and _name not in ("quit",):
        ARITY_CASES.append(pytest.param(_too_many(_name, _a), id=f"{_name}-too-many"))


@pytest.mark.parametrize("cmd", ARITY_CASES)
def test_wrong_arity(both, cmd):
    r = both(*cmd)
    assert isinstance(r, Err), r
    name = cmd[0].lower() if cmd[0].lower() not in ("client", "config", "memory", "object", "command") \
        or len(cmd) < 2 else f"{cmd[0].lower()}|{cmd[1].lower()}"
    # EXEC reports it as EXECABORT ("Transaction discarded because of: wrong number ...")
    assert f"wrong number of arguments for '{name}' command" in r.msg, r.msg


def test_arity_error_uses_lowercase_name(both):
    assert both.err("GeT") == "ERR wrong number of arguments for 'get' command"
    assert both.err("client", "GETNAME", "x") == "ERR wrong number of arguments for 'client|getname' command"


# ---------------------------------------------------------------- unknown commands

UNKNOWN = [
    ("NOSUCHCOMMAND",), ("NOSUCHCOMMAND", "a"), ("NOSUCHCOMMAND", "a", "b", "c"), ("nosuch", "x" * 200),
    ("GETT", "k"), ("SET_", "k", "v"), ("LPUSHX_NO", "a"), (b"\xff\xfe", "a"), ("x" * 200,),
    ("NOSUCH", "a b", "c\nd"),
]


@pytest.mark.parametrize("cmd", UNKNOWN, ids=lambda c: repr(c)[:30])
def test_unknown_command(both, cmd):
    both.err(*cmd, prefix="ERR unknown command")


def test_unknown_command_message_format(both):
    assert both.err("FOOBAR", "a", "b") == "ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' "
    assert both.err("FOOBAR") == "ERR unknown command 'FOOBAR', with args beginning with: "


@pytest.mark.parametrize("cmd", [("CLIENT", "NOSUCH"), ("CONFIG", "NOSUCH"), ("OBJECT", "NOSUCH", "k"),
                                 ("MEMORY", "NOSUCH"), ("COMMAND", "NOSUCH")])
def test_unknown_subcommand(both, cmd):
    both.err(*cmd, prefix=f"ERR unknown subcommand 'NOSUCH'. Try {cmd[0]} HELP.")


def test_connection_survives_errors(both):
    for _ in range(3):
        both.err("NOSUCH")
        both.err("GET")
        both("SET", "k", "v")
        both.err("INCR", "k")
    assert both("GET", "k") == b"v"


# ---------------------------------------------------------------- integer / float argument errors

NOT_INTEGER = [
    ("EXPIRE", "k", "x"), ("PEXPIRE", "k", "1.5"), ("EXPIREAT", "k", ""), ("SETEX", "k", "x", "v"),
    ("PSETEX", "k", "x", "v"), ("GETRANGE", "k", "x", "1"), ("GETRANGE", "k", "0", "x"), ("SETRANGE", "k", "x", "v"),
    ("INCRBY", "k", "x"), ("DECRBY", "k", "1.0"), ("SETBIT", "k", "x", "1"), ("GETBIT", "k", "x"),
    ("BITCOUNT", "k", "0", "x"), ("BITPOS", "k", "1", "x"), ("HINCRBY", "h", "f", "x"), ("SPOP", "s", "x"),
    ("SRANDMEMBER", "s", "x"), ("ZRANGE", "z", "x", "1"), ("ZREVRANGE", "z", "0", "x"), ("ZREMRANGEBYRANK", "z", "x", "1"),
    ("ZPOPMIN", "z", "x"), ("ZRANDMEMBER", "z", "x"), ("ZRANGEBYSCORE", "z", "0", "1", "LIMIT", "x", "1"),
    ("SELECT", "x"), ("SCAN", "0", "COUNT", "x"), ("HSCAN", "h", "0", "COUNT", "x"), ("SINTERCARD", "x", "s"),
    ("ZUNIONSTORE", "d", "x", "z"), ("COPY", "k", "d", "DB", "x"), ("HRANDFIELD", "h", "x"),
    ("OBJECT", "ENCODING", "k", "x"), ("CLIENT", "KILL", "ID", "x"), ("SET", "k", "v", "EX", "x"),
    ("GETEX", "k", "PX", "x"), ("EXPIRE", "k", "99999999999999999999"), ("INCRBY", "k", "9223372036854775808"),
]


@pytest.mark.parametrize("cmd", NOT_INTEGER, ids=lambda c: " ".join(c))
def test_not_an_integer(both, cmd):
    both.seq(("SET", "k", "v"), ("HSET", "h", "f", "1"), ("SADD", "s", "m"), ("ZADD", "z", "1", "m"))
    r = both(*cmd)
    assert isinstance(r, Err)


NOT_FLOAT = [
    ("INCRBYFLOAT", "n", "x"), ("HINCRBYFLOAT", "h", "f", "x"), ("ZADD", "z", "x", "m"), ("ZINCRBY", "z", "x", "m"),
    ("ZCOUNT", "z", "x", "1"), ("ZRANGEBYSCORE", "z", "0", "x"), ("ZREMRANGEBYSCORE", "z", "(x", "1"),
    ("ZRANGE", "z", "x", "1", "BYSCORE"), ("ZUNIONSTORE", "d", "1", "z", "WEIGHTS", "x"),
    ("ZINTER", "1", "z", "WEIGHTS", "nan"), ("ZADD", "z", "1e", "m"), ("ZADD", "z", "--1", "m"),
    ("ZLEXCOUNT", "z", "a", "b"), ("ZRANGEBYLEX", "z", "[a", "b"),
]


@pytest.mark.parametrize("cmd", NOT_FLOAT, ids=lambda c: " ".join(c))
def test_not_a_float(both, cmd):
    both.seq(("SET", "n", "1"), ("HSET", "h", "f", "1"), ("ZADD", "z", "1", "m"))
    r = both(*cmd)
    assert isinstance(r, Err)


# ---------------------------------------------------------------- WRONGTYPE across families


@pytest.mark.parametrize("cmd", [("GET", "h"), ("HGET", "s", "f"), ("SADD", "z", "m"), ("ZADD", "k", "1", "m"),
                                 ("PFADD", "h", "x"), ("INCR", "z"), ("SMEMBERS", "h"), ("ZCARD", "s"),
                                 ("HLEN", "z"), ("APPEND", "h", "x"), ("SETBIT", "s", "1", "1"), ("BITCOUNT", "z"),
                                 ("GETBIT", "h", "1"), ("BITPOS", "z", "1"), ("RENAME", "h", "h"),
                                 ("SINTERSTORE", "d", "k"), ("ZINTERSTORE", "d", "1", "k"), ("PFCOUNT", "z")])
def test_wrongtype_matrix(both, cmd):
    both.seq(("SET", "k", "v"), ("HSET", "h", "f", "v"), ("SADD", "s", "m"), ("ZADD", "z", "1", "m"))
    both(*cmd)
