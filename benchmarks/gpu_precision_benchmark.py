"""Mixed precision on a GPU: the ViT application trained in float32 and in mixed_bfloat16.

    KERAS_BACKEND=jax python benchmarks/gpu_precision_benchmark.py --output DIR    # on a GPU machine
    KERAS_BACKEND=jax python benchmarks/gpu_precision_benchmark.py --quick        # smoke run, any machine

Issue 7's GPU target: mixed_bfloat16 trains the ViT application at least 2x
faster than float32, with no loss of accuracy. Each configuration trains the
application's model (`build_vit`), optimizer, schedule and loss
(`compile_for_training`) with the Fashion-MNIST recipe's settings, once per
policy, from the same seed, and reports the training throughput (images/s
over the epochs after the first, which holds the compilation) and the test
accuracy. Configurations: the recipe itself (ViT-tiny, batch 256, 28
epochs), then larger models and batches, where the GPU's matrix units rather
than per-step overheads set the pace.

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
# (name, model size, patch size, batch size, epochs); the first is the application's recipe.
CONFIGURATIONS = (
    ("recipe", "tiny", 4, 256, 28),
    ("small-1024", "small", 4, 1024, 8),
    ("base-1024", "base", 4, 1024, 6),
    ("base-patch2-512", "base", 2, 512, 3),  # 196 tokens an image instead of 49.
)
QUICK = (("recipe", "micro", 4, 64, 2),)
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


def train_once(data, policy, size, patch_size, batch_size, epochs, max_examples=None):
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
    recipe = recipe_for("fashion-mnist", size=size, patch_size=patch_size, batch_size=batch_size, epochs=epochs,
                        jit_compile=True)
    model = build_vit(x_train.shape[1:], len(data.class_names), **recipe["model"])
    compile_for_training(model, recipe, math.ceil(len(x_train) / batch_size))
    timer = EpochTimes()
    history = model.fit(FlippedBatches(x_train, one_hot[y_train], batch_size, seed=0), epochs=epochs,
                        callbacks=[timer], verbose=2)
    _, test_accuracy = model.evaluate(x_test, one_hot[y_test], batch_size=1024, verbose=0)
    later = timer.seconds[1:] or timer.seconds
    set_precision("float32")
    return {
        "policy": policy,
        "dtype_policy": model.dtype_policy.name,
        "images_per_second": len(x_train) * len(later) / sum(later),
        "first_epoch_seconds": timer.seconds[0],
        "epoch_seconds": timer.seconds,
        "final_loss": history.history["loss"][-1],
        "losses_finite": bool(np.all(np.isfinite(history.history["loss"]))),
        "test_accuracy": float(test_accuracy),
        "parameters": model.count_params(),
    }


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


def write_results(results, machine, output):
    output.mkdir(parents=True, exist_ok=True)
    (output / "gpu_precision.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    lines = [
        "# Mixed precision on a GPU: the ViT application, float32 against mixed_bfloat16",
        "",
        f"Written by `benchmarks/gpu_precision_benchmark.py` on {datetime.date.today().isoformat()}; "
        f"{', '.join(machine['device_kinds']) or machine['devices']}; {machine['backend']} backend, "
        f"keras {machine['keras']}; `--precision auto` resolved to `{machine['auto_precision']}`.",
        "Fashion-MNIST recipe (AdamW, warmup-cosine, label smoothing 0.1, flips), seed 0, XLA-compiled steps, "
        "NumPy batches. Throughput: training images/s over the epochs after the first (the first holds the "
        "compilation). Accuracy: the official 10,000 test images.",
        "",
        "| configuration | parameters | epochs | float32 images/s | bf16 images/s | speed-up | "
        "float32 test acc. | bf16 test acc. | finite losses | 2x met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, pair in results.items():
        f32, bf16 = pair["float32"], pair["mixed_bfloat16"]
        speedup = bf16["images_per_second"] / f32["images_per_second"]
        no_loss = bf16["test_accuracy"] >= f32["test_accuracy"] - 0.005
        met = "yes" if speedup >= SPEEDUP_TARGET and no_loss else "no"
        lines.append(
            f"| {name} (ViT-{pair['size']} patch {pair['patch_size']}, batch {pair['batch_size']}) | "
            f"{f32['parameters']:,} | "
            f"{len(f32['epoch_seconds'])} | {f32['images_per_second']:,.0f} | {bf16['images_per_second']:,.0f} | "
            f"{speedup:.2f}x | {f32['test_accuracy']:.2%} | {bf16['test_accuracy']:.2%} | "
            f"{'yes' if f32['losses_finite'] and bf16['losses_finite'] else 'no'} | {met} |"
        )
    lines += ["", f"Target: mixed_bfloat16 at least {SPEEDUP_TARGET:.0f}x float32's training speed, test "
              "accuracy within half a point.", ""]
    (output / "gpu_precision.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a micro ViT on 2,048 images, two epochs")
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    from applications.image_classification import load_data

    machine = device_description()
    print(json.dumps(machine))
    data = load_data("fashion-mnist")
    configurations = QUICK if args.quick else CONFIGURATIONS
    if args.only:
        configurations = [c for c in configurations if c[0] in args.only.split(",")]
    results = {}
    for name, size, patch_size, batch_size, epochs in configurations:
        pair = {"size": size, "patch_size": patch_size, "batch_size": batch_size}
        for policy in POLICIES:
            pair[policy] = train_once(data, policy, size, patch_size, batch_size, epochs,
                                      2048 if args.quick else None)
            print(name, policy, {k: v for k, v in pair[policy].items() if k != "epoch_seconds"}, flush=True)
        results[name] = pair
        write_results(results, machine, args.output)  # After each, so a cut-short run keeps what it measured.


if __name__ == "__main__":
    main()
