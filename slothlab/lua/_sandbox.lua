-- Builds the sandbox of one slothlab Lua runtime. Runs once per runtime (as bytecode compiled
-- once per process), with the full standard library still in reach; before returning it clears
-- every global, so only what it returns stays reachable.
-- Arguments: check(step) -> nil | message (the budget / interrupt check, in Python),
--            emit(text) (where print goes), install(name) -> nil | ERR, message (installs a
--            lazily loaded module into env), pyerror(e) -> message | nil (the text of a Python
--            exception raised by a module function, which Lua sees as a userdata).
local check, emit, install, pyerror = ...

local G = _G
local sethook, traceback, getinfo = debug.sethook, debug.traceback, debug.getinfo
local pcall0, xpcall0, error0, select0, tostring0, type0 = pcall, xpcall, error, select, tostring, type
local rawget0, rawset0, pairs0, next0 = rawget, rawset, pairs, next
local pack, unpack, concat = table.pack, table.unpack, table.concat
local co_create, co_resume, co_close = coroutine.create, coroutine.resume, coroutine.close
local load0, setmetatable0, getmetatable0 = load, setmetatable, getmetatable

local STEP = 1000
local stopped = nil -- the budget / interrupt message, once the budget has run out
local depth = 0 -- nesting of run(): Python module functions may call back into Lua

-- Forget a run that did not end normally: the hook can fire between xpcall's return and the
-- end of run(), and its error then leaves run() with depth, stopped and the hook still set.
local function reset()
    stopped = nil
    depth = 0
    sethook()
end

local function hook()
    if stopped == nil then
        stopped = check(STEP)
    end
    if stopped ~= nil then
        error0(stopped, 0)
    end
end

-- Module functions are Python callables (C functions to Lua, so the caller's frame survives a
-- tail call); their errors arrive as Python exceptions. Turn them into "chunk:line: message".
local function lua_frame(co, first)
    for level = first, first + 40 do
        local info
        if co then
            info = getinfo(co, level, "Sl")
        else
            info = getinfo(level, "Sl")
        end
        if info == nil then
            return nil
        end
        if info.currentline > 0 and info.source ~= "=slothlab.sandbox" then
            return info.short_src .. ":" .. info.currentline .. ": "
        end
    end
    return nil
end

local function translate(e, co)
    if type0(e) ~= "userdata" then
        return e
    end
    local message = pyerror(e)
    if message == nil then
        return e
    end
    local where = lua_frame(co, co and 0 or 3)
    return where and where .. message or message
end

-- A budget error swallowed by pcall/xpcall or a coroutine is raised again at once.
local function reraise_if_stopped(...)
    if stopped ~= nil then
        error0(stopped, 0)
    end
    return ...
end

local function safe_pcall(f, ...)
    return reraise_if_stopped(xpcall0(f, translate, ...))
end

-- A message handler runs inside the hook when the hook raised the error, where hooks are off:
-- once the budget is gone the user's handler is not called at all.
local function safe_xpcall(f, handler, ...)
    local function guarded(...)
        if stopped ~= nil then
            return stopped
        end
        return handler(translate(...))
    end
    return reraise_if_stopped(xpcall0(f, guarded, ...))
end

-- Hooks are per thread: every coroutine gets the budget hook when it is created.
local function safe_create(f)
    local co = co_create(f)
    sethook(co, hook, "", STEP)
    return co
end

local function resumed(co, ok, ...)
    if ok then
        return ok, ...
    end
    return ok, translate((...), co)
end

local function safe_resume(co, ...)
    return reraise_if_stopped(resumed(co, co_resume(co, ...)))
end

local function safe_close(co)
    reraise_if_stopped()
    return reraise_if_stopped(co_close(co))
end

local function safe_wrap(f)
    local co = safe_create(f)
    return function(...)
        local r = pack(safe_resume(co, ...))
        if r[1] then
            return unpack(r, 2, r.n)
        end
        error0(r[2], 0)
    end
end

-- Finalizers run with hooks off (and at lua_close), so a __gc that loops would escape the
-- budget and hang the host: refuse them.
local function safe_setmetatable(t, mt)
    if type0(mt) == "table" and rawget0(mt, "__gc") ~= nil then
        error0("__gc metamethods are not allowed in slothlab's sandbox", 2)
    end
    return setmetatable0(t, mt)
end

local function print_(...)
    local n = select0("#", ...)
    local parts = {}
    for i = 1, n do
        parts[i] = tostring0((select0(i, ...)))
    end
    emit(concat(parts, "\t"))
end

local function copy(t)
    local c = {}
    for k, v in pairs0(t) do
        c[k] = v
    end
    return c
end

-- Every env gets copies of the library tables: a worker runs many tasks in one Lua state, each
-- in an env of its own (new_env), and what one task does to `string` or `math` must not reach
-- the next. The originals are unreachable once the globals are cleared. String methods look in
-- the current env's copy (the string metatable's __index), so `function string.x` still works
-- with `s:x()`.
string.dump = nil
local string_mt = getmetatable0("")
local randomseed = math.randomseed

local safe_coroutine = copy(coroutine)
safe_coroutine.create = safe_create
safe_coroutine.resume = safe_resume
safe_coroutine.wrap = safe_wrap
safe_coroutine.close = safe_close

local base = { -- functions only: they are shared, being immutable
    _VERSION = _VERSION,
    assert = assert,
    error = error,
    ipairs = ipairs,
    next = next,
    pairs = pairs,
    pcall = safe_pcall,
    print = print_,
    rawequal = rawequal,
    rawget = rawget,
    rawlen = rawlen,
    select = select,
    setmetatable = safe_setmetatable,
    tonumber = tonumber,
    tostring = tostring,
    type = type,
    xpcall = safe_xpcall,
    unpack = unpack, -- Lua 5.1 scripts (sloth-runner's) call the global unpack
}
local libs = { string = string, table = table, math = math, utf8 = utf8, coroutine = safe_coroutine,
    os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime } }

-- Modules are installed on first use: a global that is missing and named in `lazy` is
-- installed by Python, then looked up again.
local ERR = setmetatable0({}, { __name = "slothlab.error" })
local env, lazy -- the current env and the modules it may still install

-- A new env, made current; with seeds, the random generator is seeded afresh too.
local function new_env(seed1, seed2)
    reset()
    local e = copy(base)
    for name, lib in pairs0(libs) do
        e[name] = copy(lib)
    end
    e._G = e
    string_mt.__index = e.string
    local l = {}
    setmetatable0(e, {
        __index = function(t, k)
            if l[k] then
                l[k] = nil
                local flag, message = install(k)
                if flag == ERR then
                    error0(message, 2)
                end
                return rawget0(t, k)
            end
            return nil
        end,
    })
    if seed1 ~= nil then
        randomseed(seed1, seed2)
    end
    env, lazy = e, l
    return e
end
new_env()

-- Compile a chunk of text (never bytecode) in the sandbox env, or in a child env of it.
local function compile(code, name, chunk_env)
    local fn, message = load0(code, "=" .. name, "t", chunk_env or env)
    return fn, message
end

-- Where an error was raised: the innermost frame of a chunk compiled by compile().
local function where()
    for level = 3, 60 do
        local info = getinfo(level, "Sl")
        if info == nil then
            break
        end
        if info.currentline > 0 and info.source:sub(1, 1) == "=" and info.source ~= "=slothlab.sandbox" then
            return info.short_src, info.currentline
        end
    end
    return nil, nil
end

local function on_error(e)
    e = translate(e)
    if stopped ~= nil then
        local chunk, line = where()
        local ok, tb = pcall0(traceback, stopped, 2)
        return { kind = "budget", message = stopped, traceback = ok and tb or "", chunk = chunk, line = line }
    end
    local kind = type0(e)
    if kind == "table" then
        local mt = getmetatable0(e)
        if type0(mt) == "table" and rawget0(mt, "__tostring") ~= nil then
            local ok, text = pcall0(tostring0, e)
            e = ok and text or e
        end
    elseif kind ~= "string" then
        e = tostring0(e)
    end
    local chunk, line = where()
    local ok, tb = pcall0(traceback, type0(e) == "string" and e or "", 2)
    return { kind = "error", message = e, traceback = ok and tb or "", chunk = chunk, line = line }
end

-- Run fn(...) with the hook on; returns true, n, results... or false, error-table.
local function run(fn, ...)
    if depth == 0 then
        stopped = nil
    end
    depth = depth + 1
    sethook(hook, "", STEP)
    local r = pack(xpcall0(fn, on_error, ...))
    depth = depth - 1
    if depth == 0 then
        sethook()
    end
    if r[1] then
        return true, r.n - 1, unpack(r, 2, r.n)
    end
    return false, r[2]
end

-- Mark module names to install on first use.
local function add_lazy(names)
    for _, name in next0, names do
        if rawget0(env, name) == nil then
            lazy[name] = true
        end
    end
end

for k in pairs0(G) do
    G[k] = nil
end

return env, compile, run, add_lazy, ERR, new_env, reset
