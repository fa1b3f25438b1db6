#!/usr/bin/env bash
# Parallel-execution benchmark for stepwise.
#
# Builds, in a temporary directory, a synthetic project of 14 steps whose `needs` graph is the
# DraftGenie deployment's, with a fake `az` (first on PATH) that sleeps for each command in
# proportion to the real Azure duration scaled down 1000x (resource group 5 s -> 5 ms, Redis
# 20 min -> 1.2 s, ...). It then deploys it on a fresh state with `--jobs 1` (sequential), with
# the default jobs (4) and with `--jobs 16`, RUNS times each, and reports medians:
#   - sequential and parallel wall time (end to end, process start to exit, and stepwise's own
#     `wall_secs` from `--output json`);
#   - the critical path: the longest path through the graph, using each step's median
#     `duration_secs` from the sequential runs;
#   - parallel / critical path and sequential / parallel.
# Target: parallel wall time <= 1.05 x critical path + 50 ms (judged on the end-to-end time of
# --jobs 16, where no step ever waits for a free slot; --jobs 4 is reported too: it can only
# reach the critical path if no more than 4 steps are ever ready at once).
#
# Environment:
#   STEPWISE   the binary (default: target/release/stepwise of this repository; it is copied
#              to the temporary directory so a rebuild during the run does not disturb it)
#   RUNS       runs per configuration (default 5)
#   AZ_SCALE   multiplies every fake az duration (default 1)
#   KEEP=1     keep the temporary directory
#
# Exit status: 0 when the target is met, 1 when it is not, 2 on a setup error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="${STEPWISE:-$repo/target/release/stepwise}"
runs="${RUNS:-5}"
az_scale="${AZ_SCALE:-1}"

die() { echo "parallel.sh: $*" >&2; exit 2; }
[[ -x "$bin" ]] || die "no stepwise binary at $bin (run: cargo build --release, or set STEPWISE)"
command -v python3 >/dev/null || die "python3 is required"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"

work="$(mktemp -d "${TMPDIR:-/tmp}/stepwise-parallel.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
    echo "keeping $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi
cp "$bin" "$work/stepwise"

python3 - "$work" "$runs" "$az_scale" <<'PY'
import json, os, statistics, subprocess, sys, time

work, runs, az_scale = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
proj = os.path.join(work, "project")
bindir = os.path.join(work, "bin")
os.makedirs(os.path.join(proj, "steps"))
os.makedirs(bindir)

# --- the fake az: seconds per command prefix (real Azure durations / 1000) -------------------
DURATIONS = [
    ("group create", 0.005),
    ("monitor log-analytics workspace create", 0.060),
    ("acr create", 0.060),
    ("keyvault create", 0.060),
    ("postgres flexible-server create", 0.600),
    ("redis create", 1.200),
    ("containerapp env create", 0.300),
    ("acr build", 0.120),
    ("containerapp create", 0.060),
]
OTHER = 0.005
cases = "\n".join(
    f'    "{prefix}"*) t={secs * az_scale:.4f} ;;' for prefix, secs in DURATIONS
)
az = f"""#!/bin/sh
# fake az for the stepwise parallel benchmark: sleeps, prints an empty JSON object
case "$*" in
{cases}
    *) t={OTHER * az_scale:.4f} ;;
esac
sleep "$t"
echo '{{}}'
"""
with open(os.path.join(bindir, "az"), "w") as f:
    f.write(az)
os.chmod(os.path.join(bindir, "az"), 0o755)

# --- the 14 steps: (name, needs, az calls) ----------------------------------------------------
APPS = ["api-gateway", "speaker-service", "draft-service", "rag-service", "evaluation-service"]
STEPS = [
    ("check_prerequisites", [], [["account", "show"]]),
    ("create_resource_group", ["check_prerequisites"],
     [["group", "create", "--name", "rg", "--location", "eastus"]]),
    ("create_monitoring", ["create_resource_group"],
     [["monitor", "log-analytics", "workspace", "create", "--workspace-name", "logs"]]),
    ("create_container_registry", ["create_resource_group"],
     [["acr", "create", "--name", "acr", "--sku", "Basic"]]),
    ("create_key_vault", ["create_resource_group"], [["keyvault", "create", "--name", "kv"]]),
    ("create_databases", ["create_resource_group", "create_key_vault"],
     [["postgres", "flexible-server", "create", "--name", "pg"], ["redis", "create", "--name", "redis"]]),
    ("store_secrets", ["create_key_vault", "create_databases"],
     [["keyvault", "secret", "set", "--name", n] for n in ("POSTGRES-PASSWORD", "REDIS-KEY", "JWT-SECRET")]),
    ("create_container_apps_env", ["create_monitoring"],
     [["containerapp", "env", "create", "--name", "env"]]),
    ("build_and_push_images", ["create_container_registry"],
     [["acr", "build", "--registry", "acr", "--image", a] for a in APPS]),
    ("deploy_infrastructure_services", ["create_container_apps_env", "store_secrets"],
     [["containerapp", "create", "--name", a] for a in ("qdrant", "rabbitmq")]),
    ("deploy_application_services",
     ["build_and_push_images", "store_secrets", "create_container_apps_env"],
     [["containerapp", "create", "--name", a] for a in APPS]),
    ("configure_environment_variables",
     ["deploy_application_services", "deploy_infrastructure_services", "store_secrets"],
     [["containerapp", "update", "--name", a, "--set-env-vars", "X=1"] for a in APPS]),
    ("run_migrations",
     ["build_and_push_images", "store_secrets", "create_container_apps_env", "deploy_application_services"],
     [["containerapp", "job", "start", "--name", "migrations"]]),
    ("verify_deployment",
     ["configure_environment_variables", "run_migrations", "deploy_infrastructure_services"],
     [["containerapp", "show", "--name", a] for a in APPS]),
]
NEEDS = {name: needs for name, needs, _ in STEPS}

def rhai_list(xs):
    return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

for i, (name, needs, calls) in enumerate(STEPS, 1):
    body = "\n".join(f"    az({rhai_list(c)});" for c in calls)
    text = (
        f"let step = #{{\n"
        f"    description: {json.dumps(name.replace('_', ' '))},\n"
        f"    needs: {rhai_list(needs)},\n"
        f"    files: [],\n"
        f"    config: [\"azure.resource_group\"],\n"
        f"}};\n\n"
        f"fn run() {{\n{body}\n}}\n"
    )
    with open(os.path.join(proj, "steps", f"{i:02d}_{name}.rhai"), "w") as f:
        f.write(text)
with open(os.path.join(proj, "config.yaml"), "w") as f:
    f.write("azure:\n  resource_group: bench-rg\n  location: eastus\n")

stepwise = os.path.join(work, "stepwise")
env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], NO_COLOR="1")
env.pop("STEPWISE_STATE", None)

def deploy(jobs, run_no):
    state = os.path.join(work, "states", f"jobs{jobs or 'default'}-{run_no}", "state.json")
    cmd = [stepwise, "--auto-approve", "--output", "json", "--config", "config.yaml",
           "--steps", "steps", "--state", state]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(f"stepwise failed (exit {p.returncode}) with jobs={jobs}:\n{p.stderr}\n{p.stdout}\n")
        sys.exit(2)
    doc = json.loads(p.stdout)
    bad = [s["name"] for s in doc["steps"] if s["result"] != "ran"]
    if bad or len(doc["steps"]) != len(STEPS):
        sys.stderr.write(f"unexpected results (jobs={jobs}): {json.dumps(doc['steps'], indent=1)}\n")
        sys.exit(2)
    return elapsed, doc

CONFIGS = [(1, "--jobs 1 (sequential)"), (None, "default jobs (4)"), (16, "--jobs 16")]
results = {}
load_before = os.getloadavg()[0]
# warm-up: page cache, dynamic loader, fake az
deploy(16, "warmup")
for r in range(runs):          # interleave configurations so drift hits all of them alike
    for jobs, _ in CONFIGS:
        results.setdefault(jobs, []).append(deploy(jobs, r))

med = statistics.median
def walls(jobs):
    return med(e for e, _ in results[jobs]), med(d["wall_secs"] for _, d in results[jobs])

# per-step durations from the sequential runs
step_dur = {name: med(next(s["duration_secs"] for s in d["steps"] if s["name"] == name)
                      for _, d in results[1]) for name, _, _ in STEPS}
# critical path: longest path through the needs graph (steps are listed in a topological order)
finish, via = {}, {}
for name, needs, _ in STEPS:
    prev = max(needs, key=lambda n: finish[n]) if needs else None
    finish[name] = step_dur[name] + (finish[prev] if prev else 0.0)
    via[name] = prev
end = max(finish, key=finish.get)
cp = finish[end]
path = []
while end:
    path.append(end)
    end = via[end]
path.reverse()

# the most steps ready or running at once in an ideal schedule (earliest start = longest path
# to the step), to say whether --jobs 4 can reach the critical path
events = sorted([(finish[n] - step_dur[n], 1) for n in finish] + [(finish[n], -1) for n in finish],
                key=lambda e: (e[0], e[1]))
width = cur = 0
for _, d in events:
    cur += d
    width = max(width, cur)

print(f"stepwise parallel benchmark: 14 steps (DraftGenie graph), fake az at 1/{1000 / az_scale:g} "
      f"of real Azure durations, {runs} runs per configuration, medians; {os.cpu_count()} CPUs, "
      f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
print()
print(f"{'step':34s} {'sequential duration':>20s}  on critical path")
for name, _, _ in STEPS:
    print(f"{name:34s} {step_dur[name] * 1000:17.0f} ms  {'*' if name in path else ''}")
seq_sum = sum(step_dur.values())
print(f"{'sum':34s} {seq_sum * 1000:17.0f} ms")
print()
print(f"{'configuration':24s} {'end-to-end':>11s} {'wall_secs':>10s} {'min':>8s} {'max':>8s}")
for jobs, label in CONFIGS:
    e2e, ws = walls(jobs)
    es = [e for e, _ in results[jobs]]
    print(f"{label:24s} {e2e * 1000:8.0f} ms {ws * 1000:7.0f} ms {min(es) * 1000:5.0f} ms {max(es) * 1000:5.0f} ms")
print()
print(f"critical path: {cp * 1000:.0f} ms  ({' -> '.join(path)})")
print(f"widest ideal schedule: {width} steps running at once "
      f"({'--jobs 4 can reach the critical path' if width <= 4 else 'more than 4: --jobs 4 may fall short of the critical path'})")
seq_e2e, seq_ws = walls(1)
print(f"sequential: end-to-end {seq_e2e * 1000:.0f} ms vs sum of step durations {seq_sum * 1000:.0f} ms "
      f"(overhead {(seq_e2e - seq_sum) * 1000:.0f} ms, {(seq_e2e - seq_sum) / len(STEPS) * 1000:.1f} ms per step; "
      f"wall_secs overhead {(seq_ws - seq_sum) * 1000:.0f} ms)")
print()
verdict = {}
for jobs, label in CONFIGS[1:]:
    e2e, ws = walls(jobs)
    limit = 1.05 * cp + 0.050
    ok = e2e <= limit
    verdict[jobs] = ok
    print(f"{label:18s} parallel/critical-path {e2e / cp:5.3f} (wall_secs {ws / cp:5.3f})   "
          f"sequential/parallel {seq_e2e / e2e:5.2f}x   "
          f"target <= {limit * 1000:.0f} ms: {'PASS' if ok else 'FAIL'} ({e2e * 1000:.0f} ms)")
print()
print("target: parallel wall time (end to end, --jobs 16) within 5% (+50 ms) of the critical path")
ok = verdict[16]
print(f"result: {'PASS' if ok else 'FAIL'}"
      + ("" if verdict[None] == ok else
         f"  (default jobs: {'PASS' if verdict[None] else 'FAIL'}"
         + ("" if width <= 4 else ", expected: more than 4 steps are ready at once") + ")"))
sys.exit(0 if ok else 1)
PY
