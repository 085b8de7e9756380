"""Speed and memory of our attention layers against keras and keras_hub.

Usage:
    python benchmarks/attention_benchmark.py            # full run, about 30-60 min on 2 cores
    python benchmarks/attention_benchmark.py --quick    # a smoke run, a few minutes

Three measurements, TensorFlow backend, float32, CPU:

(a) Speed: one forward+backward step (gradients of the weights and of the
    inputs, in a `tf.function`, as `model.fit` runs on a CPU-only machine:
    keras turns XLA off there) of
    - `keras_attention.layers.MultiHeadAttention` (plain and blocked paths)
      against `keras.layers.MultiHeadAttention`, self-attention;
    - `keras_attention.layers.TransformerEncoder` (plain and blocked) against
      `keras_hub.layers.TransformerEncoder`;
    at T = 128, 512, 2048, 4096 with B = 2, N = 4 heads of H = 64
    (hidden 256, feed-forward 1024). The peers run the same shapes,
    alternating within each round, so that load from other processes hits
    them alike; we report the median wall time and the median CPU time
    (`time.process_time`, less sensitive to other processes) per step.
(b) Memory: peak RSS growth over a baseline (VmHWM, the peak behind
    `resource.getrusage`'s `ru_maxrss`, reset before the call) of one
    self-attention call, forward and forward+backward, at T = 4096, 8192,
    32768 with B = 1, N = 8, H = 64, each configuration in a fresh
    subprocess. Each subprocess gets an address-space limit below the
    memory available on the machine, so a configuration that does not fit
    fails with an allocation error instead of waking the OOM killer; it is
    reported as such.
(c) Achieved GFLOP/s of each step against this machine's float32 matmul
    rate, measured first.

Prints the tables and writes them to `benchmarks/results/attention.md`, the
raw numbers to `attention.json` (`attention_quick.*` for `--quick`).
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def results_paths(quick):
    """`(markdown, raw json)`; a `--quick` run never overwrites the full results."""
    stem = "attention_quick" if quick else "attention"
    return RESULTS_DIR / f"{stem}.md", RESULTS_DIR / f"{stem}.json"
sys.path.insert(0, str(ROOT))

# --- Settings ---
# Speed: batch, heads, head size, feed-forward size of a small model.
SPEED_BATCH, SPEED_HEADS, SPEED_HEAD_DIM, SPEED_INTERMEDIATE = 2, 4, 64, 1024
SPEED_LENGTHS = (128, 512, 2048, 4096)
# Timed rounds per length, after one warm-up round: more for the short
# lengths, whose steps take milliseconds and scatter more.
SPEED_ROUNDS = {128: 21, 512: 11, 2048: 9, 4096: 7}
# Memory: the long-sequence configuration of the targets.
MEMORY_BATCH, MEMORY_HEADS, MEMORY_HEAD_DIM = 1, 8, 64
MEMORY_LENGTHS = (4096, 8192, 32768)
MEMORY_CHILD_TIMEOUT_S = 2400
# Memory left to the rest of the machine when capping a subprocess.
MEMORY_HEADROOM_GIB = 3.0
MEMORY_CAP_MAX_GIB = 16.0

GIB = 1024**3


# === Peers ===


def make_attention(kind, num_heads, key_dim):
    """Self-attention peers: `keras`, `plain`, `blocked`."""
    import keras

    import keras_attention

    if kind == "keras":
        return keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim)
    return keras_attention.layers.MultiHeadAttention(
        num_heads=num_heads, key_dim=key_dim, attention_implementation=kind
    )


def make_encoder(kind, num_heads, intermediate_dim):
    """Encoder peers: `keras_hub`, `plain`, `blocked`."""
    import keras_hub

    import keras_attention

    if kind == "keras_hub":
        return keras_hub.layers.TransformerEncoder(
            intermediate_dim=intermediate_dim, num_heads=num_heads
        )
    return keras_attention.layers.TransformerEncoder(
        intermediate_dim=intermediate_dim, num_heads=num_heads
    )


def select_encoder_path(encoder, kind):
    """Force the encoder's attention path (its constructor picks it by length).

    The encoder has no constructor argument for it; its attention sublayer
    reads `attention_implementation` at call time.
    """
    if kind in ("plain", "blocked"):
        encoder._self_attention_layer.attention_implementation = kind


def build_peers(length, width):
    """`{name: (layer, call)}` for one sequence length, built and weight-tied."""
    import numpy as np

    peers = {}
    for kind in ("keras", "plain", "blocked"):
        layer = make_attention(kind, SPEED_HEADS, SPEED_HEAD_DIM)
        peers[f"mha/{kind}"] = (layer, lambda layer, x: layer(x, x))
    for kind in ("keras_hub", "plain", "blocked"):
        layer = make_encoder(kind, SPEED_HEADS, SPEED_INTERMEDIATE)
        peers[f"encoder/{kind}"] = (layer, lambda layer, x: layer(x))
    small = np.random.default_rng(0).normal(size=(SPEED_BATCH, 8, width)).astype("float32")
    for name, (layer, call) in peers.items():
        call(layer, small)  # build
        if name.startswith("encoder/"):
            select_encoder_path(layer, name.split("/")[1])
    # Same weights everywhere: the peers compute the same function.
    for family, reference in (("mha", "keras"), ("encoder", "keras_hub")):
        weights = peers[f"{family}/{reference}"][0].get_weights()
        for kind in ("plain", "blocked"):
            peers[f"{family}/{kind}"][0].set_weights(weights)
    return peers


def step_function(layer, call, jit_compile):
    """One forward+backward step: gradients of the weights and the inputs."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = call(layer, x)
            loss = tf.reduce_mean(tf.square(outputs))
        gradients = tape.gradient(loss, [x] + layer.trainable_variables)
        return loss, gradients

    return step


def step_flops(name, batch, length, width):
    """Useful float operations of one forward+backward step.

    Forward: the four projections (2*B*T*D*D each), the two attention
    products (2*B*N*T*T*H each), and for the encoder the feed-forward
    network (2 * 2*B*T*D*F); the backward pass costs twice the forward.
    The blocked path's recomputation is not counted: it is overhead.
    """
    forward = 4 * 2 * batch * length * width * width
    forward += 2 * 2 * batch * SPEED_HEADS * length * length * SPEED_HEAD_DIM
    if name.startswith("encoder/"):
        forward += 2 * 2 * batch * length * width * SPEED_INTERMEDIATE
    return 3 * forward


def matmul_rate(size=2048, repeats=10):
    """This machine's float32 matmul rate in GFLOP/s: `(wall, cpu)`.

    `wall` is measured, under whatever else runs on the machine; `cpu`
    divides by the CPU time spread over all cores, the rate the machine
    would give this process alone.
    """
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    matmul(a, b).numpy()
    wall, cpu = [], []
    for _ in range(repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        matmul(a, b).numpy()
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    flops = 2 * size**3
    return (
        flops / statistics.median(wall) / 1e9,
        flops / (statistics.median(cpu) / os.cpu_count()) / 1e9,
    )


def run_speed(lengths, rounds, jit_compile):
    """Median and best wall seconds, median CPU seconds, per step of every peer."""
    import numpy as np
    import tensorflow as tf

    width = SPEED_HEADS * SPEED_HEAD_DIM
    results = []
    for length in lengths:
        peers = build_peers(length, width)
        x = tf.constant(
            np.random.default_rng(1).normal(size=(SPEED_BATCH, length, width)).astype("float32")
        )
        steps = {
            name: step_function(layer, call, jit_compile) for name, (layer, call) in peers.items()
        }
        losses = {}
        for name, step in steps.items():  # trace and warm up
            losses[name] = float(step(x)[0])
        wall = {name: [] for name in steps}
        cpu = {name: [] for name in steps}
        for round_index in range(rounds.get(length, 5)):
            # Alternate the order so that no peer always runs first.
            names = list(steps) if round_index % 2 == 0 else list(reversed(steps))
            for name in names:
                wall_start, cpu_start = time.perf_counter(), time.process_time()
                loss, gradients = steps[name](x)
                loss.numpy()
                wall[name].append(time.perf_counter() - wall_start)
                cpu[name].append(time.process_time() - cpu_start)
        for name in steps:
            results.append(
                dict(
                    name=name,
                    length=length,
                    wall=statistics.median(wall[name]),
                    best=min(wall[name]),
                    cpu=statistics.median(cpu[name]),
                    flops=step_flops(name, SPEED_BATCH, length, width),
                    loss=losses[name],
                )
            )
        line = "  ".join(
            f"{r['name']} {r['wall'] * 1e3:.0f} ms (cpu {r['cpu'] * 1e3:.0f})"
            for r in results
            if r["length"] == length
        )
        print(f"T={length}: {line}", flush=True)
    return results


# === Memory (one configuration per subprocess) ===


def memory_child(kind, length, mode):
    """Run one configuration and print its peak RSS growth as JSON."""
    import numpy as np
    import tensorflow as tf

    width = MEMORY_HEADS * MEMORY_HEAD_DIM
    layer = make_attention(kind, MEMORY_HEADS, MEMORY_HEAD_DIM)
    small = np.zeros((MEMORY_BATCH, 8, width), "float32")
    layer(small, small)
    x = tf.constant(
        np.random.default_rng(0).normal(size=(MEMORY_BATCH, length, width)).astype("float32")
    )

    @tf.function
    def forward(x):
        return tf.reduce_sum(layer(x, x))

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(layer(x, x)))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    function = (forward if mode == "forward" else forward_backward).get_concrete_function(x)
    # Cap the address space: a configuration that does not fit fails with an
    # allocation error rather than taking the machine's memory.
    cap = _address_space_now() + _memory_budget()
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # The peak must be the call's own: reset the process's peak RSS to its
    # current RSS first (Linux), so the import's peak does not count.
    _reset_peak_rss()
    baseline = _peak_rss()
    start = time.perf_counter()
    try:
        outputs = function(x)
        for output in tf.nest.flatten(outputs):
            output.numpy()
        status = "ok"
    except (tf.errors.ResourceExhaustedError, MemoryError, tf.errors.InternalError) as error:
        status = f"did not fit: {type(error).__name__}"
    seconds = time.perf_counter() - start
    peak = _peak_rss()
    print(
        "RESULT "
        + json.dumps(
            dict(
                status=status,
                growth=peak - baseline,
                seconds=seconds,
                budget=_memory_budget_at_start,
            )
        ),
        flush=True,
    )


_memory_budget_at_start = None


def _peak_rss():
    """Peak RSS in bytes: VmHWM, the counter behind `getrusage`'s `ru_maxrss`.

    `ru_maxrss` also keeps the peak of the process this one was forked from
    (the kernel carries it over `exec`), which here is the benchmark itself,
    gigabytes after the speed runs; VmHWM is this process's alone.
    """
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss():
    """Set the process's peak RSS (`ru_maxrss`, VmHWM) to its current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError as error:
        print(f"warning: cannot reset the peak RSS ({error}); growth may read low", file=sys.stderr)


def _memory_budget():
    """Bytes a child may allocate: what the machine has free, less headroom."""
    global _memory_budget_at_start
    available = _meminfo("MemAvailable")
    budget = min(available - MEMORY_HEADROOM_GIB * GIB, MEMORY_CAP_MAX_GIB * GIB)
    _memory_budget_at_start = max(int(budget), GIB)
    return _memory_budget_at_start


def _meminfo(field):
    with open("/proc/meminfo") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/meminfo")


def _address_space_now():
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmSize not in /proc/self/status")


def run_memory(lengths):
    results = []
    for length in lengths:
        for mode in ("forward", "forward+backward"):
            for kind in ("keras", "plain", "blocked"):
                command = [
                    sys.executable,
                    __file__,
                    "--memory-child",
                    kind,
                    str(length),
                    mode,
                ]
                # Few malloc arenas: each reserves address space, which the
                # cap counts.
                env = dict(os.environ, MALLOC_ARENA_MAX="2")
                try:
                    completed = subprocess.run(
                        command,
                        capture_output=True,
                        text=True,
                        timeout=MEMORY_CHILD_TIMEOUT_S,
                        env=env,
                    )
                    lines = [
                        line for line in completed.stdout.splitlines() if line.startswith("RESULT ")
                    ]
                    if lines:
                        result = json.loads(lines[-1][len("RESULT ") :])
                    else:
                        tail = (completed.stderr or "").strip().splitlines()[-1:] or [""]
                        result = dict(
                            status=f"failed (exit {completed.returncode}): {tail[0][:120]}",
                            growth=None,
                            seconds=None,
                            budget=None,
                        )
                except subprocess.TimeoutExpired:
                    result = dict(
                        status=f"timed out after {MEMORY_CHILD_TIMEOUT_S} s",
                        growth=None,
                        seconds=None,
                        budget=None,
                    )
                result.update(kind=kind, length=length, mode=mode)
                results.append(result)
                growth = "-" if result["growth"] is None else f"{result['growth'] / GIB:.2f} GiB"
                print(f"memory T={length} {mode} {kind}: {growth} ({result['status']})", flush=True)
    return results


# === Report ===


CLOCKS = (("wall", "median wall time"), ("best", "best wall time"), ("cpu", "median CPU time"))


def speed_table(results, rate):
    rows = [
        "| T | layer | peer ms | plain ms | blocked ms | plain / peer | blocked / peer "
        "| blocked / plain | plain GFLOP/s (% of matmul) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def ratios(numerator, denominator):
        return " / ".join(
            f"{numerator[clock] / denominator[clock]:.2f}"
            for clock, _ in CLOCKS
            if clock in numerator
        )

    for length in sorted({r["length"] for r in results}):
        by_name = {r["name"]: r for r in results if r["length"] == length}
        for family, peer in (("mha", "keras"), ("encoder", "keras_hub")):
            peer_result = by_name[f"{family}/{peer}"]
            plain = by_name[f"{family}/plain"]
            blocked = by_name[f"{family}/blocked"]
            gflops = plain["flops"] / plain["wall"] / 1e9
            throughput = f"{gflops:.0f} ({100 * gflops / rate[0]:.0f}%)"
            if rate[1]:
                gflops_cpu = plain["flops"] / (plain["cpu"] / os.cpu_count()) / 1e9
                throughput += f"; {gflops_cpu:.0f} ({100 * gflops_cpu / rate[1]:.0f}%)"
            rows.append(
                f"| {length} | {family} vs {peer} | {peer_result['wall'] * 1e3:.0f} "
                f"| {plain['wall'] * 1e3:.0f} | {blocked['wall'] * 1e3:.0f} "
                f"| {ratios(plain, peer_result)} | {ratios(blocked, peer_result)} "
                f"| {ratios(blocked, plain)} | {throughput} |"
            )
    return rows


def memory_table(results):
    rows = [
        "| T | pass | keras GiB | plain GiB | blocked GiB | blocked / keras | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for length in sorted({r["length"] for r in results}):
        for mode in ("forward", "forward+backward"):
            by_kind = {r["kind"]: r for r in results if r["length"] == length and r["mode"] == mode}
            cells, notes = [], []
            for kind in ("keras", "plain", "blocked"):
                result = by_kind[kind]
                if result["status"] == "ok":
                    cells.append(f"{result['growth'] / GIB:.2f}")
                else:
                    budget = result.get("budget")
                    cap = f" (cap {budget / GIB:.1f} GiB)" if budget else ""
                    cells.append("-")
                    notes.append(f"{kind}: {result['status']}{cap}")
            keras_result, blocked_result = by_kind["keras"], by_kind["blocked"]
            if keras_result["status"] == "ok" and blocked_result["status"] == "ok":
                ratio = f"{blocked_result['growth'] / keras_result['growth']:.2f}"
            elif blocked_result["status"] == "ok" and keras_result.get("budget"):
                ratio = f"< {blocked_result['growth'] / keras_result['budget']:.2f}"
            else:
                ratio = "-"
            rows.append(
                f"| {length} | {mode} | {' | '.join(cells)} | {ratio} | {'; '.join(notes)} |"
            )
    return rows


def write_report(speed, memory, rate, started, finished, args):
    import keras
    import keras_hub
    import tensorflow as tf

    lines = [
        "# Attention benchmark",
        "",
        "Written by `python benchmarks/attention_benchmark.py"
        + "".join(
            f" --{flag.replace('_', '-')}"
            for flag in ("quick", "jit", "skip_speed", "skip_memory")
            if getattr(args, flag, False)
        )
        + f"` on {started:%Y-%m-%d %H:%M} UTC (finished {finished:%H:%M}).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"TensorFlow {tf.__version__}, keras {keras.__version__}, "
        f"keras-hub {keras_hub.__version__}, "
        f"float32. Load average at start {args.load_start}, at end {args.load_end} "
        "(other processes shared the cores: compare the ratios, measured in one run with the "
        "peers alternating, rather than the absolute times).",
        "",
        f"Measured float32 matmul rate (2048 x 2048): **{rate[0]:.0f} GFLOP/s** wall"
        + (
            f", {rate[1]:.0f} GFLOP/s on the CPU-time basis (operations / (CPU time / "
            f"{os.cpu_count()} cores): what the cores give one process alone)."
            if rate[1]
            else "."
        ),
        "",
    ]
    if speed:
        compiled = " with XLA" if args.jit else " without XLA (as keras on a CPU-only machine)"
        rounds = ", ".join(f"{n} (T = {t})" for t, n in args.rounds.items())
        lines += [
            "## Speed: one forward+backward step",
            "",
            f"B = {SPEED_BATCH}, N = {SPEED_HEADS} heads of H = {SPEED_HEAD_DIM} (hidden "
            f"{SPEED_HEADS * SPEED_HEAD_DIM}), feed-forward {SPEED_INTERMEDIATE}; "
            f"self-attention, no mask; `tf.function`{compiled}; median of {rounds} "
            "alternating rounds. `peer` is `keras.layers.MultiHeadAttention` or "
            "`keras_hub.layers.TransformerEncoder` with the same weights; `plain` and "
            "`blocked` are our layers forced onto each path; times are median wall times. "
            "Each ratio is given three times: median wall time / best wall time / median "
            "CPU time (`time.process_time`); below 1 means ours is faster. Other processes "
            "on the machine inflate wall times at random, the best and the CPU time much "
            "less. GFLOP/s counts the useful operations of the step per wall second (and "
            "on the CPU-time basis, against the matmul rate on that basis).",
            "",
        ]
        if getattr(args, "skip_speed", False) and getattr(args, "speed_from", None):
            lines[-2] += f" These results are kept from the run started {args.speed_from}."
        lines += speed_table(speed, rate)
        lines.append("")
    if memory:
        lines += [
            "## Memory: peak RSS growth of one self-attention call",
            "",
            f"B = {MEMORY_BATCH}, N = {MEMORY_HEADS}, H = {MEMORY_HEAD_DIM}, `keras` is "
            "`keras.layers.MultiHeadAttention`, `plain` / `blocked` our `MultiHeadAttention` on "
            "each path; each cell a fresh subprocess, growth of the peak RSS (VmHWM) over "
            "the RSS after building and tracing (the peak is reset there through "
            "`/proc/self/clear_refs`). A subprocess is capped below the memory free on the "
            "machine (`cap`): a configuration over it is reported as not fitting, with "
            "`blocked / keras` then bounded by the cap."
            + (
                f" These results are kept from the run started {args.memory_from}."
                if getattr(args, "memory_from", None)
                else ""
            ),
            "",
        ]
        lines += memory_table(memory)
        lines.append("")
    lines += targets_summary(speed, memory)
    results, raw_results = results_paths(args.quick)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n")
    raw_results.write_text(
        json.dumps(
            dict(matmul_gflops=rate, args=vars(args), started=started.isoformat(),
                 finished=finished.isoformat(), speed=speed, memory=memory),
            indent=1,
            default=str,
        )
        + "\n"
    )
    print("\n".join(lines))
    print(f"\nWritten to {results}")


def targets_summary(speed, memory):
    """The issue's targets, each with the measured value: met or not."""
    lines = ["## Targets", ""]
    if speed:
        grouped = _by_length(speed)
        for clock, label in CLOCKS:
            if clock not in speed[0]:
                continue
            worst_plain = max(
                (by["mha/plain"][clock] / by["mha/keras"][clock], length)
                for length, by in grouped.items()
            )
            lines.append(
                f"- Plain path vs `keras.layers.MultiHeadAttention`, at most 1.05 ({label}): "
                f"worst {worst_plain[0]:.2f} (T = {worst_plain[1]}) -> "
                f"{'met' if worst_plain[0] <= 1.05 else 'NOT met'}."
            )
            long = {length: by for length, by in grouped.items() if length >= 2048}
            if long:
                worst_blocked = max(
                    (by[f"{family}/blocked"][clock] / by[f"{family}/plain"][clock], length, family)
                    for length, by in long.items()
                    for family in ("mha", "encoder")
                )
                lines.append(
                    f"- Blocked vs plain at T >= 2048, at most 1.3 (forward+backward step, "
                    f"{label}): worst {worst_blocked[0]:.2f} ({worst_blocked[2]}, "
                    f"T = {worst_blocked[1]}) -> {'met' if worst_blocked[0] <= 1.3 else 'NOT met'}."
                )
    if memory:
        for length, mode, limit in ((8192, "forward", 1 / 3), (8192, "forward+backward", 1 / 2)):
            by_kind = {
                r["kind"]: r for r in memory if r["length"] == length and r["mode"] == mode
            }
            if not by_kind:
                continue
            keras_result, blocked_result = by_kind["keras"], by_kind["blocked"]
            if keras_result["status"] == "ok" and blocked_result["status"] == "ok":
                ratio = blocked_result["growth"] / keras_result["growth"]
                verdict = "met" if ratio <= limit else "NOT met"
                lines.append(
                    f"- Memory at T = {length}, {mode}, at most {limit:.2f} of keras: "
                    f"{ratio:.2f} -> {verdict}."
                )
            else:
                lines.append(
                    f"- Memory at T = {length}, {mode}: not measured in full "
                    f"(keras: {keras_result['status']}, blocked: {blocked_result['status']})."
                )
        by_kind = {r["kind"]: r for r in memory if r["length"] == 32768 and r["mode"] == "forward"}
        if by_kind:
            blocked_result = by_kind["blocked"]
            if blocked_result["status"] == "ok":
                lines.append(
                    f"- T = 32768 forward under 4 GiB: {blocked_result['growth'] / GIB:.2f} GiB -> "
                    f"{'met' if blocked_result['growth'] < 4 * GIB else 'NOT met'}."
                )
            else:
                lines.append(f"- T = 32768 forward: {blocked_result['status']}.")
    return lines + [""]


def _by_length(results):
    grouped = {}
    for result in results:
        grouped.setdefault(result["length"], {})[result["name"]] = result
    return grouped


def _load_average():
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 128, 512 and 4096 (memory) only")
    parser.add_argument("--jit", action="store_true", help="compile the steps with XLA")
    parser.add_argument(
        "--skip-speed", action="store_true", help="keep the last run's speed results"
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="keep the last run's memory results"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="re-render the tables from results/attention.json (attention_quick.json with --quick)",
    )
    parser.add_argument(
        "--memory-child", nargs=3, metavar=("KIND", "T", "MODE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.memory_child:
        kind, length, mode = args.memory_child
        memory_child(kind, int(length), mode)
        return

    if args.report_only:
        # Re-render the tables from the last run's raw results.
        raw = json.loads(results_paths(args.quick)[1].read_text())
        for name, value in raw["args"].items():
            if name not in ("report_only",):
                setattr(args, name, value)
        args.rounds = {int(length): n for length, n in args.rounds.items()}
        rate = raw["matmul_gflops"]
        rate = tuple(rate) if isinstance(rate, list) else (rate, None)
        write_report(
            raw["speed"],
            raw["memory"],
            rate,
            datetime.datetime.fromisoformat(raw["started"]),
            datetime.datetime.fromisoformat(raw["finished"]),
            args,
        )
        return

    started = datetime.datetime.now(datetime.timezone.utc)
    args.load_start = _load_average()
    args.rounds = {128: 5, 512: 3} if args.quick else SPEED_ROUNDS
    rate = matmul_rate()
    print(f"float32 matmul rate: {rate[0]:.0f} GFLOP/s ({rate[1]:.0f} on the CPU-time basis)")
    raw_results = results_paths(args.quick)[1]
    previous = json.loads(raw_results.read_text()) if raw_results.exists() else {}
    speed = []
    if args.skip_speed:
        # Keep the last run's speed results in the report (noted there).
        speed = previous.get("speed", [])
        args.speed_from = previous.get("started")
    else:
        lengths = (128, 512) if args.quick else SPEED_LENGTHS
        speed = run_speed(lengths, args.rounds, args.jit)
    memory = []
    if args.skip_memory:
        # Keep the last run's memory results in the report (noted there).
        memory = previous.get("memory", [])
        args.memory_from = previous.get("started")
    else:
        memory = run_memory((4096,) if args.quick else MEMORY_LENGTHS)
    finished = datetime.datetime.now(datetime.timezone.utc)
    args.load_end = _load_average()
    write_report(speed, memory, rate, started, finished, args)


if __name__ == "__main__":
    main()
