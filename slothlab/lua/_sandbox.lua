-- Builds the sandbox of one slothlab Lua runtime. Runs once, with the full standard library still
-- in reach; the Python side clears every global afterwards, so only what this chunk returns stays.
-- Arguments: check(step) -> nil | message (the budget / interrupt check, in Python),
--            emit(text) (where print goes).
local check, emit = ...

local sethook, traceback = debug.sethook, debug.traceback
local pcall0, xpcall0, error0, select0, tostring0, type0 = pcall, xpcall, error, select, tostring, type
local pack, unpack, concat = table.pack, table.unpack, table.concat
local co_create, co_resume = coroutine.create, coroutine.resume
local load0, setmetatable0, getmetatable0 = load, setmetatable, getmetatable

local STEP = 1000
local stopped = nil -- the budget / interrupt message, once the budget has run out

local function hook()
    if stopped == nil then
        stopped = check(STEP)
    end
    if stopped ~= nil then
        error0(stopped, 0)
    end
end

-- A budget error swallowed by pcall/xpcall or a coroutine is raised again at once.
local function reraise_if_stopped(...)
    if stopped ~= nil then
        error0(stopped, 0)
    end
    return ...
end

local function safe_pcall(f, ...)
    return reraise_if_stopped(pcall0(f, ...))
end

local function safe_xpcall(f, handler, ...)
    return reraise_if_stopped(xpcall0(f, handler, ...))
end

local function safe_create(f)
    local co = co_create(f)
    sethook(co, hook, "", STEP)
    return co
end

local function safe_resume(co, ...)
    return reraise_if_stopped(co_resume(co, ...))
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

local function copy(t, without)
    local c = {}
    for k, v in pairs(t) do
        if not (without and without[k]) then
            c[k] = v
        end
    end
    return c
end

local function print_(...)
    local n = select0("#", ...)
    local parts = {}
    for i = 1, n do
        parts[i] = tostring0((select0(i, ...)))
    end
    emit(concat(parts, "\t"))
end

local safe_string = copy(string, { dump = true })
getmetatable0("").__index = safe_string

local safe_coroutine = copy(coroutine)
safe_coroutine.create = safe_create
safe_coroutine.resume = safe_resume
safe_coroutine.wrap = safe_wrap

local env = {
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
    setmetatable = setmetatable,
    tonumber = tonumber,
    tostring = tostring,
    type = type,
    xpcall = safe_xpcall,
    unpack = unpack, -- Lua 5.1 scripts (sloth-runner's) call the global unpack
    string = safe_string,
    table = copy(table),
    math = copy(math),
    utf8 = copy(utf8),
    coroutine = safe_coroutine,
    os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime },
}
env._G = env

-- Compile a chunk of text (never bytecode) in the sandbox env, or in a child env of it.
local function compile(code, name, chunk_env)
    local fn, message = load0(code, "=" .. name, "t", chunk_env or env)
    return fn, message
end

local function on_error(e)
    if stopped ~= nil then
        return { kind = "budget", message = stopped }
    end
    local ok, tb = pcall0(traceback, tostring0(e), 2)
    return { kind = "error", message = e, traceback = ok and tb or "" }
end

-- Run fn(...) with the hook on; returns true, n, results... or false, error-table.
local function run(fn, ...)
    sethook(hook, "", STEP)
    local r = pack(xpcall0(fn, on_error, ...))
    sethook()
    if r[1] then
        return true, r.n - 1, unpack(r, 2, r.n)
    end
    return false, r[2]
end

-- A Lua face for a Python function: a result of (ERR, message) becomes a Lua error raised at the
-- caller's line, so module errors read like Lua's own.
local ERR = setmetatable0({}, { __name = "slothlab.error" })
local function wrap_python(pyfn)
    return function(...)
        local r = pack(pyfn(...))
        if r[1] == ERR then
            error0(r[2], 2)
        end
        return unpack(r, 1, r.n)
    end
end

local function reset()
    stopped = nil
end

return env, compile, run, wrap_python, reset, ERR
