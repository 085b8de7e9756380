"""Choosing a mixed-precision policy for the hardware at hand."""

import shutil
import subprocess

import keras

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")

# bfloat16 tensor cores arrived with NVIDIA Ampere (compute capability 8.0);
# older GPUs have float16 tensor cores only (7.x) or none.
BFLOAT16_MIN_COMPUTE_CAPABILITY = 8.0
FLOAT16_MIN_COMPUTE_CAPABILITY = 7.0
# CPU instruction sets with native bfloat16 matmuls.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_precision(precision="auto"):
    """Return the dtype policy name that `precision` stands for here.

    `"auto"` picks `"mixed_bfloat16"` where the hardware multiplies in
    bfloat16 natively (NVIDIA GPUs from Ampere on; CPUs with AVX-512 BF16
    or AMX), `"mixed_float16"` on older GPUs with float16 tensor cores
    (Keras then scales the loss), and `"float32"` otherwise, where reduced
    precision would be emulated and slower. Other values pass through.

    Args:
        precision: str. One of `"auto"`, `"float32"`, `"mixed_float16"`,
            `"mixed_bfloat16"`. Defaults to `"auto"`.

    Returns:
        The name of a Keras dtype policy.

    Example:

    >>> from keras_attention.precision import resolve_precision
    >>> resolve_precision("mixed_bfloat16")
    'mixed_bfloat16'
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision: {precision!r}. Expected one of {PRECISIONS}."
        )
    if precision != "auto":
        return precision
    capability = gpu_compute_capability()
    if capability is not None:
        if capability >= BFLOAT16_MIN_COMPUTE_CAPABILITY:
            return "mixed_bfloat16"
        if capability >= FLOAT16_MIN_COMPUTE_CAPABILITY:
            return "mixed_float16"
        return "float32"
    if cpu_has_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def set_precision(precision="auto"):
    """Set Keras's global dtype policy from `precision`; return its name.

    Layers created afterwards compute in the policy's dtype and keep float32
    weights; our layers keep softmax, normalization statistics and losses in
    float32 whatever the policy. Under `"mixed_float16"`, `Model.compile`
    wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`.

    Args:
        precision: str. See `resolve_precision`. Defaults to `"auto"`.

    Returns:
        The name of the policy set.

    Example:

    >>> import keras
    >>> from keras_attention.precision import set_precision
    >>> set_precision("mixed_bfloat16")
    'mixed_bfloat16'
    >>> keras.layers.Dense(2).compute_dtype
    'bfloat16'
    >>> _ = set_precision("float32")
    """
    policy = resolve_precision(precision)
    keras.config.set_dtype_policy(policy)
    return policy


def gpu_compute_capability():
    """The compute capability of the first NVIDIA GPU, or `None` if none.

    Asks `nvidia-smi`, which every backend's GPU setup has, so the library
    needs no backend-specific device query.
    """
    if not _backend_sees_a_gpu():
        return None
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.split()
    if result.returncode != 0 or not lines:
        return None
    return float(lines[0])


def _backend_sees_a_gpu():
    """Whether Keras's backend runs on a GPU here (not only: whether one exists)."""
    if keras.backend.backend() == "torch":
        # keras lists devices for JAX and TensorFlow only (no
        # `keras.distribution` under PyTorch); its PyTorch backend places new
        # tensors on CUDA whenever torch sees a GPU.
        return str(keras.ops.zeros(()).device).startswith("cuda")
    return any(device.startswith("gpu") for device in keras.distribution.list_devices())


def cpu_has_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """Whether the CPU advertises native bfloat16 instructions (Linux)."""
    try:
        with open(cpuinfo_path) as cpuinfo:
            flags = set(cpuinfo.read().split())
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BFLOAT16_FLAGS)
