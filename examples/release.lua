-- examples/release.lua: a small release pipeline, run by `make demo` (`slothlab run examples/release.lua`).
--
--   build ──┬── unit_tests (shell) ──┐
--           ├── lint       (shell) ──┼── package ── on_complete
--           └── smoke  (Lua, retry) ─┘
--
-- It needs nothing but a POSIX shell and tar: everything is written to a fresh scratch folder,
-- and the build number is kept in slothlab's state store (~/.slothlab/state.db).

local P = "demo:release:"

-- Top-level code runs when the file is loaded, before any task: make the scratch folder here
-- so shell-string tasks can use it as their working directory.
local mk = exec.run("mktemp -d")
assert(mk.success, "mktemp failed: " .. mk.stderr)
local WORK = mk.stdout:gsub("%s+$", "")

local build = task("build")
    :description("Stamp a version and write the app")
    :timeout("1m")
    :command(function(this, params)
        local n = state.increment(P .. "builds")
        local version = "1.4." .. n
        assert(fs.mkdir(WORK .. "/app"))
        assert(fs.write(WORK .. "/app/VERSION", version .. "\n"))
        assert(fs.write(WORK .. "/app/main.lua", "print('hello from app " .. version .. "')\n"))
        log.info("build #" .. n .. " in " .. WORK)
        return true, "built " .. version, { version = version }
    end)
    :build()

-- Two shell-string tasks: they run in parallel with each other (and with smoke).
local unit_tests = task("unit_tests")
    :description("Run the unit tests")
    :depends_on({ "build" })
    :workdir(WORK)
    :timeout("30s")
    :command("test -s app/VERSION && sleep 0.5 && echo 'unit: 12 passed'")
    :build()

local lint = task("lint")
    :description("Check the sources")
    :depends_on({ "build" })
    :workdir(WORK)
    :timeout("30s")
    :command("grep -q print app/main.lua && sleep 0.5 && echo 'lint: clean'")
    :build()

-- A check that fails on its first attempt (a service "warming up") and passes on the retry,
-- after the engine's 1 s backoff.
local attempts = 0
local smoke = task("smoke")
    :description("Start the app and look at its output")
    :depends_on({ "build" })
    :retries(2)
    :command(function(this, params, inputs)
        attempts = attempts + 1
        if attempts == 1 then
            return false, "service warming up"
        end
        local r = exec.run("cat app/VERSION", { workdir = WORK, timeout = "5s" })
        if not r.success then
            return false, "cannot read the version: " .. r.stderr
        end
        local seen = r.stdout:gsub("%s+$", "")
        return seen == inputs.build.version, "smoke ok on attempt " .. attempts, { seen = seen }
    end)
    :build()

local package = task("package")
    :description("Make the release tarball")
    :depends_on({ "unit_tests", "lint", "smoke" })
    :command(function(this, params, inputs)
        local version = inputs.smoke.seen
        local artifact = WORK .. "/app-" .. version .. ".tar.gz"
        local r = exec.run("tar -czf '" .. artifact .. "' app", { workdir = WORK })
        if not r.success then
            return false, "tar failed: " .. r.stderr
        end
        return true, "packaged " .. fs.basename(artifact), {
            artifact = artifact,
            bytes = fs.size(artifact),
            unit = inputs.unit_tests.stdout:gsub("%s+$", ""),
        }
    end)
    :on_success(function(this, params, outputs)
        log.info("artifact ready: " .. outputs.artifact .. " (" .. outputs.bytes .. " bytes)")
    end)
    :build()

workflow.define("release")
    :description("Build, check in parallel, package")
    :version("1.0.0")
    :tasks({ build, unit_tests, lint, smoke, package })
    :config({ timeout = "5m" })
    :on_complete(function(success, results)
        if success then
            state.set(P .. "last", results.build.outputs.version)
        end
        log.info("release " .. (success and "done" or "FAILED") .. "; last good release: "
            .. tostring(state.get(P .. "last", "none")))
    end)
