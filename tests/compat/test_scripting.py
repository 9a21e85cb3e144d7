"""Scripts: EVAL and its family, the Lua API, Lua <-> RESP conversions, the libraries (cjson,
cmsgpack, bit, struct), SCRIPT, FUNCTION and FCALL, each compared with redis-server."""

import hashlib
import re
import time

import pytest

from harness import Err, RawConn, encode_command


@pytest.fixture(autouse=True)
def _no_scripts(cluster):
    """Scripts and libraries survive FLUSHALL: start every test without them."""
    for server in (cluster.oracle, cluster.target):
        c = cluster.admin(server)
        c.execute_command("SCRIPT", "FLUSH")
        c.execute_command("FUNCTION", "FLUSH")
        c.execute_command("CONFIG", "SET", "busy-reply-threshold", "5000")


def sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


# Every script runs with EVAL <script> 0 on both servers; replies (errors included, with
# their "script: <sha>, on @user_script:N." suffix) must be identical.
SCRIPTS = [
    # conversions Lua -> RESP
    "return 1", "return 3.99", "return -2.9", "return 1e100", "return -1e100", "return 'x'",
    "return true", "return false", "return nil", "return {1,2,nil,4}",
    "return {1.9,-2.9,'x',true,false,{1,{2}}}", "return {}", "return {{}}",
    "return {double=3.5}", "return {map={a=1}}", "return {set={a=true}}",
    "return {big_number='12345678901234567890'}",
    "return {verbatim_string={format='txt', string='hello'}}",
    "return {ok='x', err='y'}", "return {err='y', ok='x'}", "return {1, err='y'}", "return {ok=5}",
    "return {err=5}", "return {ok={}}", "return {ok='-x'}", "return {err='-X y'}", "return {{err='inner'}}",
    "return {{ok='inner'}}", "return {1,{err='inner'}}", "return {err='a\\r\\nb'}", "return {ok='a\\nb'}",
    "return {KEYS, ARGV, #KEYS}",
    # conversions RESP -> Lua
    "return redis.call('set','k','v')", "return redis.call('ping')", "return redis.call('get','nokey')",
    "return type(redis.call('get','nokey'))", "return {redis.call('incr','cnt')}",
    "return redis.call('type','cnt')['ok']", "return type(redis.call('type','cnt'))",
    "redis.call('hset','h','f',1,'g',2) return redis.call('hgetall','h')",
    "return redis.call('lrange','nolist',0,-1)", "return redis.call('exists','nokey')",
    "redis.call('zadd','z',1.5,'m') return redis.call('zscore','z','m')",
    "redis.setresp(3) return redis.call('hgetall','nokey')",
    "redis.setresp(3) redis.call('hset','h','f',1) return redis.call('hgetall','h').map.f",
    "redis.setresp(3) redis.call('sadd','s','x') return tostring(redis.call('smembers','s').set.x)",
    "redis.setresp(3) return type(redis.call('get','nokey'))",
    "redis.setresp(3) redis.call('zadd','z',1.5,'m') return redis.call('zscore','z','m').double",
    "redis.setresp(3) return type(redis.call('zscore','z','m'))",
    "redis.setresp(3) return redis.call('ping')", "return redis.setresp(3)", "redis.setresp(4)",
    # arguments
    "return redis.call('set', 'a', 0.1) and redis.call('get', 'a')",
    "return redis.call('set', 'a', 2^62) and redis.call('get', 'a')",
    "return redis.call('set', 'a', 1e20) and redis.call('get', 'a')",
    "return redis.call('set', 'a', 10.0) and redis.call('get', 'a')",
    "return redis.call('set', 'a', -0.5) and redis.call('get', 'a')",
    "return redis.call('set', 'a', 1/0) and redis.call('get', 'a')",
    "return redis.call('set', 'a', 123456789012345) and redis.call('get', 'a')",
    "return redis.call('set', 'a', true)", "return redis.call('set', 'a', nil)", "return redis.call('incr', {})",
    # errors
    "x = 5", "return y", "error('boom')", "error({err='MY bad'})", "error({err='noprefix'})", "error(5)",
    "error()", "error(true)", "return redis.call('incr','k') and redis.call('incr', 'k')",
    "redis.call('set','foo','bar') return redis.call('incr','foo')",
    "redis.call('set','foo','bar') return redis.pcall('incr','foo')",
    "return redis.call('nosuch')", "return redis.call('multi')", "return redis.call('blpop','nokey', 0)",
    "return redis.call('hello','3')", "return redis.call('eval','return 1', 0)", "return redis.call('set','a')",
    "return redis.call()", "return redis.call(1)", "return redis.call({})", "return redis.pcall('set')",
    "local t = redis.pcall('set') return t['err']", "\n\nlocal x = 1\nredis.call('nosuch')",
    "local function f() redis.call('nosuch') end\n\n f()", "local function f() error('deep') end\n\n f()",
    "return x +", "return pcall(function() error('x') end)", "return {pcall(function() redis.call('nosuch') end)}",
    "return {pcall(function() error({err='E'}) end)}",
    "local ok, e = pcall(function() redis.call('nosuch') end) return type(e)",
    "local ok, e = pcall(function() error('x') end) return {type(e), e}",
    "local ok, e = pcall(function() error({err='x'}) end) return {type(e), e}",
    "return pcall(cjson.decode, 'x')", "local ok, e = pcall(cjson.decode, '[1,') return e",
    # the redis table
    "return redis.error_reply('X y')", "return redis.error_reply('noprefix')", "return redis.error_reply('-noprefix')",
    "return redis.error_reply('')", "return redis.status_reply('FINE')", "return redis.status_reply('')",
    "return redis.status_reply(5)", "return redis.error_reply(5)", "return redis.sha1hex('')",
    "return redis.sha1hex('abc')", "return redis.sha1hex(5)", "return redis.sha1hex()",
    "return redis.log(redis.LOG_WARNING, 'hi', 'there')", "return redis.log(99, 'hi')", "return redis.log()",
    "return redis.replicate_commands()",
    "return {redis.LOG_DEBUG,redis.LOG_VERBOSE,redis.LOG_NOTICE,redis.LOG_WARNING, redis.REPL_ALL, redis.REPL_AOF, "
    "redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_NONE}",
    "return type(redis.REDIS_VERSION_NUM)",
    # the sandbox
    "return os", "return require", "return loadfile", "return dofile", "return print", "return getfenv",
    "return io", "return debug", "local t = {} t.x = 1 return _G.x", "_G.x = 1", "rawset(_G, 'x', 1)",
    "string.foo = 1", "redis.foo = 1", "cjson.foo = 1", "KEYS = 1", "getmetatable('').__index.upper = 1",
    "return setmetatable(_G, {})", "function f() end", "return _VERSION", "return string.rep('x', 10)",
    "return {unpack({1,2})}", "return table.getn({1,2,3})", "return loadstring('return 1')()",
    "return loadstring(string.dump(function() return 1 end))",
    "return tostring(1e15)..' '..tostring(0.1)..' '..tostring(1/0)..' '..tostring(123456789012)",
    "return tostring(12345678901234567890)..' '..tostring(-0.0)..' '..tostring(2^53)..' '..string.format('%d',3.7)",
    "local t = {} for k,v in pairs(_G) do t[#t+1] = k..':'..type(v) end table.sort(t) return t",
    "local t = {} for k,v in pairs(redis) do t[#t+1] = k..':'..type(v) end table.sort(t) return t",
    "local t = {} for k,v in pairs(string) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(math) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(table) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(bit) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(struct) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(cjson) do t[#t+1] = k end table.sort(t) return t",
    "local t = {} for k,v in pairs(cmsgpack) do t[#t+1] = k end table.sort(t) return t",
    "math.randomseed(7) return {math.random(100), math.random(100), tostring(math.random())}",
    "math.randomseed(-3) return {math.random(5, 10), math.random(1)}",
    "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 end) "
    "local _, x = coroutine.resume(co, 1) local _, y = coroutine.resume(co, 10) return {x, y}",
    # cjson
    "return cjson.encode({1,2,{a=1}})", "return cjson.encode({[1]=1,[100]=2})", "return cjson.encode({[1]=1,[3]=2})",
    "return cjson.encode({a='x/y\"z\\n\\1', b={}, c=cjson.null, d=1.5, e=1e300, f=-0.000001})",
    "return cjson.encode(0/0)", "return cjson.encode(function() end)", "return cjson.encode({[true]=1})",
    "return cjson.encode('\\127')", "return cjson.encode(123456789012345678)", "return cjson.encode()",
    "return cjson.decode('{\"a\":[1,2,{\"b\":null}],\"c\":\"\\\\u00e9\\\\ud83d\\\\ude00\"}').c",
    "return cjson.decode('{\"a\":[1,2,{\"b\":null}]}').a[3].b == cjson.null",
    "return cjson.encode(cjson.decode('[1,2.5,\"x\",true,false,null,{\"k\":\"v\"},[],{}]'))",
    "return cjson.encode(cjson.decode(' [ 1e3 , -2 , 0.5 ] '))",
    "return cjson.decode('[1,2')", "return cjson.decode('{\"a\" 1}')", "return cjson.decode('{1:2}')",
    "return cjson.decode('[1] x')", "return cjson.decode('')", "return cjson.decode('\"abc')",
    "return cjson.decode('\"\\\\q\"')", "return cjson.decode('[tru]')",
    "return cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))",
    "local t = {} local c = t for i = 1, 1001 do c[1] = {} c = c[1] end return cjson.encode(t)",
    # cmsgpack
    "return cmsgpack.pack({1,2,3}, 'abc', 1.5, -1, 300, -300, 70000, 5000000000, {a=1}, true, false, nil, "
    "string.rep('x',40), string.rep('y', 300), 0.1, 1e300, -40, -200, -40000, -3000000000)",
    "return {cmsgpack.unpack(cmsgpack.pack({1,2,3}, 'abc', 1.5, -33, {a=1}, true))}",
    "return cmsgpack.unpack(cmsgpack.pack({1,{2,{3,{4}}}}))[2][2][2][1]",
    "return cmsgpack.pack({})", "return cmsgpack.pack({[1]=1,[3]=3})", "return cmsgpack.pack(cjson.null)",
    "local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1,2,3), 0)}", "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1,2,3), 2, 2)}", "return cmsgpack.unpack('')",
    "return cmsgpack.unpack(string.char(0xdc, 0, 5, 1))", "return cmsgpack.unpack(string.char(0xc1))",
    "return cmsgpack.pack()", "return cmsgpack.unpack(string.char(0xcb, 63, 240, 0, 0, 0, 0, 0, 0))",
    "return cmsgpack.unpack(string.char(0xc4, 3, 97, 98, 99))",
    # bit
    "return bit.tohex(bit.bor(1,2,4))..bit.tohex(-1,-4)..bit.band(0xff,0x0f)..bit.lshift(1,31)..bit.rshift(-1,1)"
    "..bit.arshift(-256,4)..bit.bswap(1)..bit.rol(1,33)..bit.ror(1,1)..bit.bxor(5,3)..bit.bnot(0)..bit.tobit(2^32+5)",
    "return bit.tohex(65535, 2)", "return bit.band('x')", "return bit.tobit(1.5)",
    # struct
    "return struct.pack('>iHbd', 1, 2, -3, 1.5)", "return {struct.unpack('>iHbd', struct.pack('>iHbd', 1, 2, -3, 1.5))}",
    "return {struct.size('>iHbd'), struct.size('!4 i b h'), struct.size('!i b d')}",
    "return {struct.unpack('s c3 b c0', struct.pack('s c3 b c0', 'hi', 'abc', 2, 'zz'))}",
    "return struct.pack('<I3 i8 l L B', 65536, -2, -1, 7, 255)", "return struct.pack('i', 'x')",
    "return struct.unpack('i', 'ab')", "return struct.pack('y', 1)", "return {struct.unpack('>h', '\\255\\254', 1)}",
    "return {struct.unpack('b', 'ab', 2)}", "return struct.size('s')", "return struct.pack('i33', 1)",
    "return {struct.unpack('f', struct.pack('f', 0.5))}",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s[:40])
def test_eval(both, script):
    both("EVAL", script, "2", "k1", "k2", "a1")


@pytest.mark.parametrize("script", [s for s in SCRIPTS if "setresp" in s or "return true" == s or "false" in s
                                    or "double" in s or "map" in s or "set" in s or "big_number" in s
                                    or "verbatim" in s][:40], ids=lambda s: s[:40])
def test_eval_resp3(both3, script):
    both3("EVAL", script, "0")


def test_keys_not_declared_work(both):
    both("EVAL", "redis.call('set', 'undeclared', ARGV[1]) return redis.call('get', 'undeclared')", "0", "v")
    both("GET", "undeclared")


def test_numkeys_errors(both):
    both("EVAL", "return 1", "abc")
    both("EVAL", "return 1", "-1")
    both("EVAL", "return 1", "2", "a")
    both("EVAL", "return 1")
    both("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "x")


def test_script_cache(both):
    both("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0")
    both("EVALSHA", "abc", "0")
    both("SCRIPT", "LOAD", "return 1")
    both("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0")
    both("EVALSHA", "E0E1F9FABFC9D4800C877A703B823AC0578FF8DB", "0")
    both("SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "abc")
    both("EVAL", "return 2", "0")
    both("SCRIPT", "EXISTS", "7f923f79fe76194c868d7e1d0820de36700eb649")
    both("SCRIPT", "FLUSH", "ASYNC")
    both("SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    both("SCRIPT", "FLUSH", "BOGUS")
    both("SCRIPT", "LOAD", "return +")
    both("SCRIPT", "KILL")
    both("SCRIPT", "BOGUS")
    both("SCRIPT")


def test_read_only_variants(both):
    both("EVAL_RO", "return redis.call('set','a','b')", "0")
    both("EVAL_RO", "return redis.call('get','a')", "0")
    both("SCRIPT", "LOAD", "return redis.call('set','a','b')")
    both("EVALSHA_RO", "d8f2fad9f8e86a53d2a6ebd960b33c4972cacc37", "0")
    both("EVAL", "#!lua flags=no-writes\nreturn redis.call('set','a','b')", "0")
    both("EVAL", "#!lua flags=no-writes\nreturn redis.call('get','a')", "0")
    both("EVAL", "#!lua flags=bogus\nreturn 1", "0")
    # A shebang declares whether a script writes; EVALSHA keeps what the body declared.
    no_writes = "#!lua flags=no-writes\nreturn redis.call('set','a','b')"
    writes = "#!lua\nreturn redis.call('set','a','c')"
    both("SCRIPT", "LOAD", no_writes)
    both("SCRIPT", "LOAD", writes)
    both("EVALSHA", sha1(no_writes), "0")
    both("EVALSHA_RO", sha1(no_writes), "0")
    both("EVALSHA_RO", sha1(writes), "0")
    both("EVAL_RO", writes, "0")
    both("EVAL_RO", "#!lua flags=no-writes\nreturn redis.call('get','a')", "0")
    both("EVALSHA", sha1(writes), "0")
    both("GET", "a")
    both("EVAL", "#!js\nreturn 1", "0")


def test_eval_in_multi_and_watch(both):
    other = both.new()
    both("SET", "w", "1")
    both("WATCH", "w")
    other("EVAL", "return redis.call('incr', KEYS[1])", "1", "w")
    both("MULTI")
    both("EVAL", "return redis.call('set', KEYS[1], 'x')", "1", "w")
    assert both("EXEC") is None
    both("MULTI")
    both("EVAL", "redis.call('set', KEYS[1], 'y') return redis.call('get', KEYS[1])", "1", "w")
    both("EVAL", "return redis.call('incr', KEYS[1])", "1", "w")
    both("EXEC")
    both("GET", "w")


def test_blocking_commands_in_scripts_do_not_block(both):
    both("EVAL", "return redis.call('blmpop', 0, 1, 'nolist', 'LEFT')", "0")
    both("EVAL", "return redis.call('xread', 'BLOCK', 0, 'STREAMS', 'nostream', '$')", "0")
    both("EVAL", "return redis.call('bzmpop', 0, 1, 'nozset', 'MIN')", "0")


def test_select_inside_a_script_does_not_leak(both):
    both("EVAL", "redis.call('select', 1) redis.call('set', 'in1', 'x') return redis.call('get', 'in1')", "0")
    both("GET", "in1")
    both("SELECT", "1")
    both("GET", "in1")


# ---------------------------------------------------------------- functions

LIB1 = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return {keys[1], args[1]} end)"
LIB2 = ("#!lua name=lib2\n"
        "redis.register_function{function_name='f2', callback=function(k, a) return redis.call('get', k[1]) end, "
        "flags={'no-writes'}, description='reads'}\n"
        "redis.register_function('f3', function(k, a) error('boom') end)\n"
        "redis.register_function('f4', function(k, a) return redis.call('nosuch') end)\n"
        "redis.register_function('f5', function(k, a) return redis.call('set', k[1], a[1]) end)\n"
        "redis.register_function{function_name='f6', callback=function() return 1 end, flags={'allow-oom', 'no-cluster', 'allow-stale'}}")

BAD_LIBRARIES = [
    "return 1", "#!js name=x\nreturn 1", "#!lua\nreturn 1", "#!lua name=x foo=bar\nreturn 1",
    "#!lua name=x-y\nreturn 1", "#!lua name=lib1\nreturn 1", "#!lua name=lib1\nreturn +",
    "#!lua name=lib1\nx = 1", "#!lua name=lib1\nredis.call('ping')",
    "#!lua name=lib2\nredis.register_function('f 1', function(keys, args) return 1 end)",
    "#!lua name=lib2\nredis.register_function('f2', 5)", "#!lua name=lib2\nredis.register_function('f2')",
    "#!lua name=lib2\nredis.register_function{function_name='f2', callback=function() return 1 end, flags={'bogus'}}",
    "#!lua name=lib2\nredis.register_function{function_name='f2', callback=function() return 1 end, foo=1}",
    "#!lua name=lib2\nredis.register_function{function_name='f2', callback=function() return 1 end, flags='no-writes'}",
    "#!lua name=lib2\nredis.register_function{function_name='f2'}",
    "#!lua name=lib2\nredis.register_function{callback=function() end}",
    "#!lua name=lib2\nredis.register_function('f2', function() end) redis.register_function('f2', function() end)",
]


def sorted_libraries(reply):
    """FUNCTION LIST in a stable order: Redis lists libraries and functions in hash order."""
    if not isinstance(reply, list):
        return reply
    out = []
    for lib in reply:
        lib = list(lib)
        i = lib.index(b"functions") + 1
        lib[i] = sorted(lib[i], key=lambda f: f[1])
        out.append(lib)
    return sorted(out, key=lambda lib: lib[1])


@pytest.mark.parametrize("code", BAD_LIBRARIES, ids=lambda s: s.replace("\n", " ")[:50])
def test_function_load_errors(both, code):
    both("FUNCTION", "LOAD", code)
    both("FUNCTION", "LIST", norm=sorted_libraries)


def test_functions(both):
    both("FUNCTION", "LOAD", LIB1)
    both("FUNCTION", "LOAD", LIB1)
    both("FUNCTION", "LOAD", "#!lua name=lib3\nredis.register_function('f1', function() return 1 end)")
    both("FUNCTION", "LOAD", LIB2)
    both("FCALL", "f1", "1", "k", "v")
    both("FCALL", "f5", "1", "k", "v")
    both("FCALL", "f2", "1", "k")
    both("FCALL_RO", "f2", "1", "k")
    both("FCALL_RO", "f1", "1", "k")
    both("FCALL_RO", "f5", "1", "k", "x")
    both("FCALL", "f3", "0")
    both("FCALL", "f4", "0")
    both("FCALL", "f6", "0")
    both("FCALL", "nosuch", "0")
    both("FCALL", "f1", "2", "k")
    both("FUNCTION", "LIST", norm=sorted_libraries)
    both("FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "lib2", norm=sorted_libraries)
    both("FUNCTION", "LIST", "LIBRARYNAME", "lib*", norm=sorted_libraries)
    both("FUNCTION", "LIST", "bogus")
    both("FUNCTION", "STATS")
    both("FUNCTION", "LOAD", "REPLACE", "#!lua name=lib1\nredis.register_function('f1', function() return 2 end)")
    both("FCALL", "f1", "0")
    both("FUNCTION", "DELETE", "nosuch")
    both("FUNCTION", "DELETE", "lib1")
    both("FCALL", "f1", "0")
    both("FUNCTION", "KILL")
    both("FUNCTION", "FLUSH", "bogus")
    both("FUNCTION", "RESTORE", "xx")
    both("FUNCTION", "FLUSH")
    both("FUNCTION", "LIST")
    both("FUNCTION", "HELP")


def any_library(reply):
    """Redis names the first colliding library in its hash order, which changes from one
    process to the next: the name is left out of the comparison."""
    if isinstance(reply, Err):
        return Err(re.sub(r"^ERR Library \S+ already exists$", "ERR Library <name> already exists", reply.msg))
    return reply


def test_function_dump_restore_across_servers(both, cluster):
    """A payload dumped by redis-server restores on the replica and the other way round."""
    both("FUNCTION", "LOAD", LIB1)
    both("FUNCTION", "LOAD", LIB2)
    oracle, target = both.oracle, both.target
    from_redis = oracle.execute_command("FUNCTION", "DUMP")
    from_replica = target.execute_command("FUNCTION", "DUMP")
    both("FUNCTION", "RESTORE", from_redis, norm=any_library)  # APPEND: the libraries exist
    both("FUNCTION", "FLUSH")
    assert oracle.execute_command("FUNCTION", "RESTORE", from_replica) == b"OK"
    assert target.execute_command("FUNCTION", "RESTORE", from_redis) == b"OK"
    both("FUNCTION", "LIST", "WITHCODE", norm=sorted_libraries)
    both("FCALL", "f1", "1", "a", "b")
    both("FUNCTION", "RESTORE", from_redis, "REPLACE")
    both("FUNCTION", "RESTORE", from_redis, "FLUSH")
    both("FUNCTION", "RESTORE", from_redis, "BOGUS")
    damaged = bytearray(from_redis)
    damaged[5] ^= 0xff
    both("FUNCTION", "RESTORE", bytes(damaged))
    both("FUNCTION", "LIST", norm=sorted_libraries)


# ---------------------------------------------------------------- busy scripts

def _until_busy(conn, *command, timeout=10):
    """Sends `command` until the server answers -BUSY (the script on another connection may not
    have started yet on a loaded machine); returns that reply."""
    deadline = time.monotonic() + timeout
    while True:
        reply = conn.cmd(*command)
        if reply.startswith(b"-BUSY") or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)


def _busy_exchange(server, script):
    """Runs a looping script on one connection; meanwhile another connection sees BUSY and
    kills it. Returns (reply of a command while busy, SCRIPT KILL reply, the script's reply)."""
    conn = RawConn(server.port, timeout=10)
    conn.send(encode_command("EVAL", script, "0"))
    other = RawConn(server.port, timeout=10)
    busy = _until_busy(other, "GET", "x")
    kill_fn = other.cmd("FUNCTION", "KILL")
    kill = other.cmd("SCRIPT", "KILL")
    result = conn.read_reply()
    after = other.cmd("PING")
    conn.close()
    other.close()
    return busy, kill_fn, kill, result, after


def test_script_kill(servers, cluster):
    for s in servers:
        cluster.admin(s).execute_command("CONFIG", "SET", "busy-reply-threshold", "100")
    script = "local i = 0 while true do i = i + 1 end"
    results = [_busy_exchange(s, script) for s in servers]
    assert results[0] == results[1]
    assert results[1][0].startswith(b"-BUSY")
    assert results[1][2] == b"+OK\r\n"
    assert b"Script killed by user with SCRIPT KILL" in results[1][3]


def test_function_kill(servers, cluster):
    """A function past the busy threshold: SCRIPT KILL refuses it, FUNCTION STATS names it,
    FUNCTION KILL stops it."""
    spin = "#!lua name=busy\nredis.register_function('spin', function() local i = 0 while true do i = i + 1 end end)"
    results = []
    for s in servers:
        admin = cluster.admin(s)
        admin.execute_command("CONFIG", "SET", "busy-reply-threshold", "100")
        admin.execute_command("FUNCTION", "LOAD", spin)
        conn = RawConn(s.port, timeout=10)
        conn.send(encode_command("FCALL", "spin", "0"))
        other = RawConn(s.port, timeout=10)
        busy = _until_busy(other, "GET", "x")
        stats = other.cmd("FUNCTION", "STATS")
        assert b"running_script" in stats and b"spin" in stats and b"duration_ms" in stats, stats
        script_kill = other.cmd("SCRIPT", "KILL")
        kill = other.cmd("FUNCTION", "KILL")
        result = conn.read_reply()
        after = other.cmd("PING")
        conn.close()
        other.close()
        results.append((busy, script_kill, kill, result, after))
    assert results[0] == results[1]
    assert results[1][0].startswith(b"-BUSY")
    assert results[1][2] == b"+OK\r\n"


def test_info_fields_frameworks_read(servers, cluster):
    """redis_version, maxmemory_policy, INFO replication and the script counters, as
    BullMQ, Sidekiq, Dapr and monitoring read them."""
    infos = []
    for s in servers:
        admin = cluster.admin(s)
        admin.execute_command("SCRIPT", "LOAD", "return 1")
        admin.execute_command("SCRIPT", "LOAD", "return 2")
        admin.execute_command("FUNCTION", "LOAD", LIB2)
        text = admin.execute_command("INFO", "everything")
        text = text.decode() if isinstance(text, bytes) else text
        infos.append(dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#")))
    oracle, target = infos
    assert tuple(map(int, target["redis_version"].split(".")[:2])) >= (7, 0)
    for field in ("maxmemory_policy", "role", "connected_slaves", "number_of_cached_scripts", "number_of_functions",
                  "master_repl_offset", "master_failover_state"):
        assert target[field] == oracle[field], field
    assert (target["maxmemory_policy"], target["role"], target["connected_slaves"]) == ("noeviction", "master", "0")
    assert (target["number_of_cached_scripts"], target["number_of_functions"]) == ("2", "5")
    assert len(target["master_replid"]) == 40
    assert 0 < int(target["used_memory_lua"]) < 10 * 1024 * 1024
    for s in servers:
        assert cluster.admin(s).execute_command("WAIT", "0", "100") == 0


def test_script_that_wrote_cannot_be_killed(servers, cluster):
    for s in servers:
        cluster.admin(s).execute_command("CONFIG", "SET", "busy-reply-threshold", "100")
    # Writes, then runs for 1.5 s by the server's clock (TIME), however fast the machine is.
    script = ("redis.call('set','w','1') local t0 = redis.call('time') local s0 = t0[1] * 1e6 + t0[2] "
              "while true do local t = redis.call('time') if t[1] * 1e6 + t[2] - s0 > 1.5e6 then break end end "
              "return 'done'")
    for s in servers:
        conn = RawConn(s.port, timeout=30)
        conn.send(encode_command("EVAL", script, "0"))
        other = RawConn(s.port, timeout=30)
        assert _until_busy(other, "PING").startswith(b"-BUSY")
        assert other.cmd("SCRIPT", "KILL").startswith(b"-UNKILLABLE Sorry the script already executed write")
        assert conn.read_reply() == b"$4\r\ndone\r\n"
        assert other.cmd("GET", "w") == b"$1\r\n1\r\n"
        conn.close()
        other.close()


@pytest.mark.replica_only
def test_script_memory_is_capped(target):
    """A script that allocates without bound gets an error; the replica lives on."""
    import redis as _r
    with pytest.raises(_r.ResponseError) as e:
        target.execute_command("EVAL", "local s = 'x' while true do s = s .. s end", "0")
    assert "not enough memory" in str(e.value)
    assert target.execute_command("PING") == b"PONG"


@pytest.mark.replica_only
def test_unsupported_debugging_calls_say_so(target):
    import redis as _r
    for script in ("redis.breakpoint()", "redis.debug('x')", "redis.set_repl(redis.REPL_NONE)"):
        with pytest.raises(_r.ResponseError) as e:
            target.execute_command("EVAL", script, "0")
        assert "not supported" in str(e.value)
    assert target.execute_command("EVAL", "redis.set_repl(redis.REPL_ALL) return 1", "0") == 1
