-- examples/cluster_demo.lua: a workflow spread over the agents of the local cluster, run by
-- `make demo` after `slothlab up --agents 2` (`slothlab run examples/cluster_demo.lua`).
--
--   inventory (shell, agent-1) ──┐
--   disk      (shell, agent-2) ──┼── report (Lua, here)
--   primes    (Lua,   agent-1) ──┤
--   words     (Lua,   agent-2) ──┘
--
-- A string command runs as a shell task on its agent; a Lua function is sent as its text and
-- called there with (this, params, inputs), so it may only use its arguments and the agent's
-- modules: values go in through params (script locals do not travel, and are refused by name).

local inventory = task("inventory")
    :description("What the first agent runs on")
    :delegate_to("agent-1")
    :timeout("20s")
    :command("echo \"$(uname -sm), $(nproc) cores, python $(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?')\"")
    :build()

local disk = task("disk")
    :description("Free space where the second agent works")
    :delegate_to("agent-2")
    :timeout("20s")
    :command("df -Pk . | awk 'NR==2 {printf \"%.1f GiB free of %.1f GiB\\n\", $4/1048576, $2/1048576}'")
    :build()

local primes = task("primes")
    :description("Count primes below params.n on the first agent (Lua, sandboxed)")
    :delegate_to("agent-1")
    :params({ n = 200000 })
    :command(function(this, params)
        local n, sieve, count = params.n, {}, 0
        for i = 2, n - 1 do
            if not sieve[i] then
                count = count + 1
                for j = i * i, n - 1, i do
                    sieve[j] = true
                end
            end
        end
        return true, count .. " primes below " .. n, { count = count, n = n }
    end)
    :build()

local words = task("words")
    :description("Count words of a text on the second agent (Lua, sandboxed)")
    :delegate_to("agent-2")
    :params({ text = "the sloth runs the tasks and the tasks run on the agents" })
    :command(function(this, params)
        local counts, top, best = {}, nil, 0
        for word in params.text:gmatch("%a+") do
            counts[word] = (counts[word] or 0) + 1
            if counts[word] > best then
                top, best = word, counts[word]
            end
        end
        return true, "most frequent: '" .. top .. "' x" .. best, { top = top, times = best }
    end)
    :build()

-- No delegate_to: this one runs in the `slothlab run` process and gathers the others' outputs.
local report = task("report")
    :description("Put the results together")
    :depends_on({ "inventory", "disk", "primes", "words" })
    :command(function(this, params, inputs)
        local lines = {
            "agent-1: " .. inputs.inventory.stdout:gsub("%s+$", ""),
            "agent-2: " .. inputs.disk.stdout:gsub("%s+$", ""),
            "primes below " .. inputs.primes.n .. ": " .. inputs.primes.count,
            "top word: " .. inputs.words.top,
        }
        for _, line in ipairs(lines) do
            log.info(line)
        end
        return true, "4 results from 2 agents", { lines = lines }
    end)
    :build()

workflow.define("cluster_demo")
    :description("Tasks spread over the local cluster's agents")
    :version("1.0.0")
    :tasks({ inventory, disk, primes, words, report })
    :config({ timeout = "2m" })
