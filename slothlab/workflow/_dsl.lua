-- The Lua side of slothlab's task DSL (sloth-runner's "Modern DSL"): the global `task(name)`
-- builder and `workflow.define(name[, spec])`. Runs once per runtime with the `workflow` module
-- table as its argument; returns a function listing the defined workflows, in definition order,
-- which the Python side (slothlab.workflow.dsl) turns into WorkflowSpec objects.
local M = ...
local defs, order = {}, {}

local TASK_SETTERS = {
    "description", "command", "timeout", "retries", "depends_on", "delegate_to", "workdir",
    "run_if", "abort_if", "pre_exec", "post_exec", "on_success", "on_failure", "params",
}
local FLOW_SETTERS = { "description", "version", "config", "on_complete" }

local function known(list)
    return table.concat(list, ", ")
end

-- A metatable whose unknown methods fail with the list of the known ones.
local function builder_meta(kind, methods, names)
    return {
        __index = function(_, key)
            local m = methods[key]
            if m == nil then
                error(kind .. " builder has no method '" .. tostring(key) .. "'; known: "
                    .. known(names), 2)
            end
            return m
        end,
    }
end

local task_methods, task_names = {}, {}
for _, field in ipairs(TASK_SETTERS) do
    task_methods[field] = function(self, value)
        rawget(self, "_def")[field] = value
        return self
    end
    task_names[#task_names + 1] = field
end
task_methods.build = function(self)
    return rawget(self, "_def")
end
task_names[#task_names + 1] = "build"
local TaskMeta = builder_meta("task", task_methods, task_names)

function task(name)
    if type(name) ~= "string" or name == "" then
        error("task(name): the name must be a non-empty string", 2)
    end
    return setmetatable({ _def = { name = name } }, TaskMeta)
end

-- A task given to :tasks() may be a built table or a builder whose :build() was forgotten.
local function unwrap_tasks(list)
    if type(list) ~= "table" then
        error("workflow tasks must be a table of tasks", 3)
    end
    local out = {}
    for key, item in pairs(list) do
        if type(item) == "table" and rawget(item, "_def") ~= nil then
            item = rawget(item, "_def")
        end
        out[key] = item
    end
    return out
end

local function register(def)
    if defs[def.name] == nil then
        order[#order + 1] = def.name
    end
    defs[def.name] = def
end

local flow_methods, flow_names = {}, {}
for _, field in ipairs(FLOW_SETTERS) do
    flow_methods[field] = function(self, value)
        rawget(self, "_def")[field] = value
        return self
    end
    flow_names[#flow_names + 1] = field
end
flow_methods.tasks = function(self, list)
    local def = rawget(self, "_def")
    def.tasks = unwrap_tasks(list)
    register(def)
    return self
end
flow_names[#flow_names + 1] = "tasks"
local FlowMeta = builder_meta("workflow", flow_methods, flow_names)

function M.define(name, spec)
    if type(name) ~= "string" or name == "" then
        error("workflow.define(name): the name must be a non-empty string", 2)
    end
    if spec == nil then
        return setmetatable({ _def = { name = name } }, FlowMeta)
    end
    if type(spec) ~= "table" then
        error("workflow.define(name, spec): spec must be a table {description=, tasks=...}", 2)
    end
    local def = { name = name, tasks = unwrap_tasks(spec.tasks or {}) }
    for _, field in ipairs(FLOW_SETTERS) do
        def[field] = spec[field]
    end
    register(def)
    return def
end

return function()
    local list = {}
    for i, name in ipairs(order) do
        list[i] = defs[name]
    end
    return list
end
