-- The scripts' sandbox, built once per Lua state. It runs with the state's real globals and
-- receives `rt`, the primitives written in Rust. It leaves behind, in `rt`:
--   env         the environment every script and library runs in (read-only, as in Redis 7)
--   globals     the table behind `env` (where KEYS and ARGV are set for each call)
--   run         runs a script's function under the error handler
--   run_fn      runs a library function with (keys, args)
--   load_env    a fresh environment for loading a function library
-- Errors keep Redis's shapes: tables {err=...} with the source and line of the user's code.

local rt = ...
local type, error, tostring, select, rawget, rawset, rawequal = type, error, tostring, select, rawget, rawset, rawequal
local setmetatable, getmetatable, next, pairs, ipairs, unpack, xpcall, pcall =
  setmetatable, getmetatable, next, pairs, ipairs, unpack, xpcall, pcall
local loadstring, strsub = loadstring, string.sub
local INTERNAL = '=syncmesh'

-- Read-only tables: an empty proxy in front of the real table.
local real_of = rt.readonly_set
local function refuse() error('Attempt to modify a readonly table', 2) end
local function readonly(real)
  local proxy = {}
  real_of[proxy] = real
  return setmetatable(proxy, { __index = real, __newindex = refuse, __metatable = false })
end

-- The error handler: every error becomes {err=..., source=..., line=...}, where source and
-- line are those of the innermost frame of the user's code (rt.error_value reads the stack).
local error_value = rt.error_value
local function handler(err)
  local t = error_value(err, false)
  return t
end

-- pcall as Redis 7 has it: an error from redis.call gives its message, and errors from the
-- libraries read as a C library's would ("user_script:1: bad argument ...").
local function pcall_handler(err)
  local m = error_value(err, true)
  return m
end
local function safe_pcall(f, ...)
  local n, args = select('#', ...), { ... }
  return xpcall(function() return f(unpack(args, 1, n)) end, pcall_handler)
end

-- Bytecode can crash the VM: only source text loads.
local function safe_loadstring(s, name)
  if type(s) == 'string' and strsub(s, 1, 1) == '\27' then
    return nil, 'attempt to load a binary chunk'
  end
  return loadstring(s, name)
end
local function safe_load(f, name)
  if type(f) == 'string' then return safe_loadstring(f, name) end
  local parts = {}
  while true do
    local piece = f()
    if piece == nil or piece == '' then break end
    if type(piece) ~= 'string' then return nil, 'reader function must return a string' end
    parts[#parts + 1] = piece
  end
  return safe_loadstring(table.concat(parts), name)
end

local safe_rawset, safe_setmetatable = rt.guard_rawset, rt.guard_setmetatable
-- Iterating a read-only table walks the table behind it.
local function safe_pairs(t)
  local real = real_of[t]
  if real then return next, real, nil end
  return pairs(t)
end
local function safe_next(t, k)
  return next(real_of[t] or t, k)
end

-- The redis table.
local redis = {}
redis.call = rt.call
redis.pcall = rt.pcall
redis.error_reply = function(msg)
  if type(msg) ~= 'string' then return { err = 'ERR wrong number or type of arguments' } end
  return { err = rt.error_text(msg) }
end
redis.status_reply = function(msg)
  if type(msg) ~= 'string' then return { err = 'ERR wrong number or type of arguments' } end
  return { ok = msg }
end
redis.sha1hex = rt.sha1hex
redis.log = rt.log
redis.setresp = rt.setresp
redis.set_repl = rt.set_repl
redis.replicate_commands = function() return true end
redis.breakpoint = function()
  error('redis.breakpoint is not supported: SyncMesh has no script debugger', 2)
end
redis.debug = function()
  error('redis.debug is not supported: SyncMesh has no script debugger', 2)
end
redis.acl_check_cmd = rt.acl_check_cmd
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION = rt.version
redis.REDIS_VERSION_NUM = rt.version_num

-- Libraries written in Rust.
local function library(fns, extra)
  local t = {}
  for name, f in pairs(fns) do t[name] = f end
  for name, v in pairs(extra or {}) do t[name] = v end
  return t
end

local math_lib = {}
for k, v in pairs(math) do math_lib[k] = v end
math_lib.random = rt.random
math_lib.randomseed = rt.randomseed

local globals = {
  assert = assert, error = error, ipairs = ipairs, next = safe_next, pairs = safe_pairs,
  pcall = safe_pcall, rawequal = rawequal, rawget = rawget, rawset = safe_rawset, select = select,
  setmetatable = safe_setmetatable, getmetatable = getmetatable, tonumber = tonumber,
  tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  collectgarbage = collectgarbage, gcinfo = gcinfo, load = safe_load, loadstring = safe_loadstring,
  _VERSION = _VERSION, __redis__err__handler = handler,
  coroutine = readonly(coroutine), string = readonly(string), table = readonly(table),
  math = readonly(math_lib), redis = readonly(redis),
  bit = readonly(library(rt.bit)),
  struct = readonly(library(rt.struct)),
  cjson = readonly(library(rt.cjson, rt.cjson_values)),
  cmsgpack = readonly(library(rt.cmsgpack, rt.cmsgpack_values)),
}
-- cjson.new(): this replica has one cjson instance (its settings are shared).
rawset(real_of[globals.cjson], 'new', function() return globals.cjson end)
local env = readonly(globals)
globals._G = env
setmetatable(globals, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = refuse,
  __metatable = false,
})

-- Strings' methods come from the read-only string table, and their metatable is read-only too.
local string_mt = getmetatable('')
string_mt.__index = globals.string
string_mt.__metatable = readonly({ __index = globals.string })

rt.env = env
rt.globals = globals
rt.run = function(f) return xpcall(f, handler) end
rt.run_fn = function(f, keys, args)
  return xpcall(function() return f(keys, args) end, handler)
end

-- Function libraries share one environment: the same globals, where `redis` is, while a
-- library loads, Redis 7's load-time API (register_function and a few others) and afterwards
-- the whole API. KEYS and ARGV do not exist there: functions get their keys and arguments.
local loading = false
local load_redis = readonly(setmetatable({
  register_function = rt.register_function,
  log = redis.log, setresp = redis.setresp,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = redis.REDIS_VERSION, REDIS_VERSION_NUM = redis.REDIS_VERSION_NUM,
}, { __index = function(_, name)
  error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end }))
local library_globals = setmetatable({}, {
  __index = function(_, name)
    if name == 'redis' then
      if loading then return load_redis end
      return globals.redis
    end
    local v = name ~= 'KEYS' and name ~= 'ARGV' and rawget(globals, name) or nil
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
    end
    return v
  end,
  __newindex = refuse,
  __metatable = false,
})
local library_env = readonly(library_globals)
rawset(library_globals, '_G', library_env)
rt.library_env = library_env
rt.set_loading = function(on) loading = on end
rt.load_library = function(f) return xpcall(f, handler) end
