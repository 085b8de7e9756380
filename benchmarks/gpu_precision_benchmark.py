"""Mixed precision on a GPU: the ViT application trained in float32 and in mixed_bfloat16.

    KERAS_BACKEND=jax python benchmarks/gpu_precision_benchmark.py --output DIR    # on a GPU machine
    KERAS_BACKEND=jax python benchmarks/gpu_precision_benchmark.py --quick        # smoke run, any machine

Issue 7's GPU target: mixed_bfloat16 trains the ViT application at least 2x
faster than float32, with no loss of accuracy. Each configuration trains the
application's model (`build_vit`), optimizer, schedule and loss
(`compile_for_training`) with the Fashion-MNIST recipe's settings, once per
policy, from the same seed, and reports the training throughput (images/s
over the epochs after the first, which holds the compilation) and the test
accuracy. Configurations: the recipe itself (ViT-tiny with its
convolutional stem, batch 256, 30 epochs), then larger models and batches,
where the GPU's matrix units rather than per-step overheads set the pace.
`--strict NAMES` also trains those configurations with float32 matrix
products at full precision (no TF32). Before training it times square
matrix products and the plain and fused attention paths in bfloat16.

The GPU machines lent to this project carry JAX but not TensorFlow, so the
batches come from a `keras.utils.PyDataset` that does the recipe's per-epoch
shuffle and horizontal flips in NumPy instead of the application's `tf.data`
pipeline, and the steps are XLA-compiled (`jit_compile=True`: under JAX an
uncompiled step runs op by op). Writes `gpu_precision.json` and
`gpu_precision.md` to `--output` (default `benchmarks/results`).
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_ATTENTION_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")
# (name, recipe overrides, epochs); the first is the application's Fashion-MNIST recipe as it
# stands (convolutional stem, ViT-tiny, batch 256), the others larger models and batches, where
# the GPU's matrix units rather than per-step overheads set the pace.
CONFIGURATIONS = (
    ("recipe", dict(), 30),
    # 196 tokens an image (2x2 patches, no stem) and ViT-S widths: the matrix products dominate.
    ("large-patch2-512", dict(size="large", patch_size=2, stem_filters=(), batch_size=512,
                              learning_rate=1e-3, warmup_epochs=1), 3),
    ("small-1024", dict(size="small", stem_filters=(), batch_size=1024, warmup_epochs=1), 8),
)
QUICK = (("recipe", dict(size="micro", batch_size=64), 2),)
SPEEDUP_TARGET = 2.0


class FlippedBatches(keras.utils.PyDataset):
    """The recipe's training batches: reshuffled every epoch, flipped left-right at random."""

    def __init__(self, images, one_hot, batch_size, seed):
        super().__init__()
        self.images, self.one_hot, self.batch_size = images, one_hot, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.images[chosen].copy()
        flip = self.rng.random(len(chosen)) < 0.5
        images[flip] = images[flip][:, :, ::-1]
        return images, self.one_hot[chosen]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))


class EpochTimes(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def train_once(data, policy, overrides, epochs, max_examples=None, matmul_precision=None):
    """Trains the recipe with `overrides` under `policy`; `matmul_precision` sets JAX's float32 dots."""
    import jax

    from applications.common import set_seed
    from applications.image_classification import build_vit, recipe_for
    from applications.image_classification.recipe import compile_for_training
    from keras_attention.precision import set_precision

    set_precision(policy)
    set_seed(0)
    x_train, y_train = data.get("train")
    x_train, y_train = x_train[:max_examples], y_train[:max_examples]
    x_test, y_test = data.get("test")
    one_hot = np.eye(len(data.class_names), dtype="float32")
    recipe = recipe_for("fashion-mnist", epochs=epochs, jit_compile=True, **overrides)
    batch_size = recipe["batch_size"]
    model = build_vit(x_train.shape[1:], len(data.class_names), **recipe["model"])
    compile_for_training(model, recipe, math.ceil(len(x_train) / batch_size))
    timer = EpochTimes()
    # The precision of float32 matrix products is part of what XLA compiles, so it holds for the
    # whole run: JAX's default lets the GPU run them as TF32 on its tensor cores.
    with jax.default_matmul_precision(matmul_precision):
        history = model.fit(FlippedBatches(x_train, one_hot[y_train], batch_size, seed=0), epochs=epochs,
                            callbacks=[timer], verbose=2)
        _, test_accuracy = model.evaluate(x_test, one_hot[y_test], batch_size=1024, verbose=0)
    later = timer.seconds[1:] or timer.seconds
    set_precision("float32")
    return {
        "policy": policy,
        "matmul_precision": matmul_precision or "default",
        "dtype_policy": model.dtype_policy.name,
        "model": recipe["model"],
        "batch_size": batch_size,
        "images_per_second": len(x_train) * len(later) / sum(later),
        "first_epoch_seconds": timer.seconds[0],
        "epoch_seconds": timer.seconds,
        "final_loss": history.history["loss"][-1],
        "losses_finite": bool(np.all(np.isfinite(history.history["loss"]))),
        "test_accuracy": float(test_accuracy),
        "parameters": model.count_params(),
    }


def matmul_rates(size=8192, repeats=10):
    """TFLOP/s of a square matrix product: float32 at JAX's default and highest precision, bfloat16."""
    import jax
    import jax.numpy as jnp

    rates = {}
    for name, dtype, precision in (("float32 default", "float32", None), ("float32 highest", "float32", "highest"),
                                   ("bfloat16", "bfloat16", None)):
        a = jax.random.normal(jax.random.key(0), (size, size), dtype)
        b = jax.random.normal(jax.random.key(1), (size, size), dtype)
        product = jax.jit(lambda x, y: x @ y)
        with jax.default_matmul_precision(precision):
            product(a, b).block_until_ready()
            started = time.perf_counter()
            for _ in range(repeats):
                result = product(a, b)
            result.block_until_ready()
        rates[name] = 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12
    return rates


def device_description():
    from keras_attention.precision import gpu_compute_capability, resolve_precision

    devices = keras.distribution.list_devices()
    try:
        import jax

        names = sorted({device.device_kind for device in jax.devices()})
    except ImportError:
        names = []
    return {
        "devices": devices,
        "device_kinds": names,
        "compute_capability": gpu_compute_capability(),
        "auto_precision": resolve_precision("auto"),
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }


def attention_paths(batch=512, length=196, heads=6, head_dim=64, repeats=20):
    """The plain and fused attention paths in bfloat16, forward and backward:
    largest differences from a float32 reference and milliseconds a step."""
    import jax
    import jax.numpy as jnp

    from keras_attention.ops import dot_product_attention

    keys = jax.random.split(jax.random.key(0), 3)
    inputs32 = [jax.random.normal(k, (batch, length, heads, head_dim), "float32") for k in keys]
    inputs16 = [x.astype("bfloat16") for x in inputs32]
    reference = dot_product_attention(*inputs32, implementation="plain")
    report = {"shape": f"batch {batch}, {length} tokens, {heads} heads of {head_dim}"}
    for implementation in ("plain", "fused"):

        def loss(*tensors):
            return jnp.sum(dot_product_attention(*tensors, implementation=implementation).astype("float32"))

        step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
        output = jax.jit(lambda *t: dot_product_attention(*t, implementation=implementation))(*inputs16)
        jax.block_until_ready(step(*inputs16))
        started = time.perf_counter()
        for _ in range(repeats):
            result = step(*inputs16)
        jax.block_until_ready(result)
        report[implementation] = {
            "max_abs_difference_from_float32": float(jnp.max(jnp.abs(output.astype("float32") - reference))),
            "forward_backward_ms": (time.perf_counter() - started) / repeats * 1000,
        }
    return report


def describe(run):
    model = run["model"]
    stem = "conv stem" if model["stem_filters"] else "plain patches"
    return (f"ViT {model['hidden_dim']}x{model['num_layers']} ({model['size']}), patch {model['patch_size']}, "
            f"{stem}, batch {run['batch_size']}")


def write_results(results, machine, output):
    output.mkdir(parents=True, exist_ok=True)
    (output / "gpu_precision.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    rates = machine.get("matmul_tflops", {})
    paths = machine.get("attention_paths_bfloat16", {})
    lines = [
        "# Mixed precision on a GPU: the ViT application, float32 against mixed_bfloat16",
        "",
        f"Written by `benchmarks/gpu_precision_benchmark.py` on {datetime.date.today().isoformat()}; "
        f"{', '.join(machine['device_kinds']) or machine['devices']}; {machine['backend']} backend, "
        f"keras {machine['keras']}; `--precision auto` resolved to `{machine['auto_precision']}`.",
        "Fashion-MNIST recipe (AdamW, warmup-cosine, label smoothing 0.1, flips; random erasing left out), "
        "seed 0, XLA-compiled steps, NumPy batches. Throughput: training images/s over the epochs after the "
        "first (the first holds the compilation). Accuracy: the official 10,000 test images.",
        "",
        "8192x8192 matrix products, TFLOP/s: " + ", ".join(f"{k} {v:,.1f}" for k, v in rates.items()),
        "",
        f"Attention alone in bfloat16 ({paths.get('shape')}; forward and backward, jit): "
        + ", ".join(f"{k} {v['forward_backward_ms']:.2f} ms a step, largest difference from float32 "
                    f"{v['max_abs_difference_from_float32']:.4f}"
                    for k, v in paths.items() if k != "shape"),
        "",
        "| configuration | parameters | epochs | float32 images/s | bf16 images/s | speed-up | "
        "float32 test acc. | bf16 test acc. | finite losses | 2x met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        f32, bf16 = runs.get("float32"), runs.get("mixed_bfloat16")
        if not (f32 and bf16):
            continue
        speedup = bf16["images_per_second"] / f32["images_per_second"]
        no_loss = bf16["test_accuracy"] >= f32["test_accuracy"] - 0.005
        met = "yes" if speedup >= SPEEDUP_TARGET and no_loss else "no"
        lines.append(
            f"| {name}: {describe(f32)} | {f32['parameters']:,} | "
            f"{len(f32['epoch_seconds'])} | {f32['images_per_second']:,.0f} | {bf16['images_per_second']:,.0f} | "
            f"{speedup:.2f}x | {f32['test_accuracy']:.2%} | {bf16['test_accuracy']:.2%} | "
            f"{'yes' if f32['losses_finite'] and bf16['losses_finite'] else 'no'} | {met} |"
        )
        strict = runs.get("float32-highest")
        if strict:
            lines.append(
                f"| {name}, float32 dots at full precision (`highest`, no TF32) | | {len(strict['epoch_seconds'])} | "
                f"{strict['images_per_second']:,.0f} | {bf16['images_per_second']:,.0f} | "
                f"{bf16['images_per_second'] / strict['images_per_second']:.2f}x | {strict['test_accuracy']:.2%} | "
                f"| | |"
            )
    lines += ["", f"Target: mixed_bfloat16 at least {SPEEDUP_TARGET:.0f}x float32's training speed (JAX's "
              "default float32, whose matrix products run as TF32), test accuracy within half a point.", ""]
    (output / "gpu_precision.md").write_text("\n".join(lines))
    print("\n".join(lines), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a micro ViT on 2,048 images, two epochs")
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--epochs", type=int, help="epochs for every configuration (default: each one's own)")
    parser.add_argument("--strict", help="configuration names also trained with full-precision float32 dots")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from applications.image_classification import load_data

    machine = device_description()
    machine["matmul_tflops"] = matmul_rates(1024 if args.quick else 8192, 2 if args.quick else 10)
    machine["attention_paths_bfloat16"] = attention_paths(*((8, 16, 2, 8, 2) if args.quick else ()))
    print(json.dumps(machine), flush=True)
    data = load_data("fashion-mnist")
    configurations = QUICK if args.quick else CONFIGURATIONS
    if args.only:
        configurations = [c for c in configurations if c[0] in args.only.split(",")]
    strict = set(args.strict.split(",")) if args.strict else set()
    max_examples = 2048 if args.quick else None
    results = {}
    configurations = [(name, overrides, args.epochs or epochs) for name, overrides, epochs in configurations]
    for name, overrides, epochs in configurations:
        runs = results[name] = {}
        for policy in POLICIES:
            runs[policy] = train_once(data, policy, overrides, epochs, max_examples)
            print(name, policy, {k: v for k, v in runs[policy].items() if k != "epoch_seconds"}, flush=True)
            write_results(results, machine, args.output)  # After each, so a cut-short run keeps what it measured.
    for name, overrides, epochs in configurations:
        if name in strict:
            # Two epochs: the first compiles, the second is timed.
            run = train_once(data, "float32", overrides, min(epochs, 2), max_examples, matmul_precision="highest")
            results[name]["float32-highest"] = run
            print(name, "float32-highest", {k: v for k, v in run.items() if k != "epoch_seconds"}, flush=True)
            write_results(results, machine, args.output)


if __name__ == "__main__":
    main()
