import math

import keras
from keras import ops

DECAYS = ("constant", "linear", "cosine", "inverse_sqrt")


@keras.saving.register_keras_serializable(package="keras_attention")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to a peak learning rate, then a decay.

    The learning rate grows linearly from `0` to `peak_learning_rate` over
    `warmup_steps` optimizer steps, then follows `decay`:
    - `"constant"`: stays at the peak;
    - `"linear"`: falls linearly to `final_learning_rate` at `total_steps`;
    - `"cosine"`: follows half a cosine down to `final_learning_rate` at
      `total_steps`;
    - `"inverse_sqrt"`: `peak * sqrt(warmup_steps / step)`, the schedule of
      Vaswani et al. 2017 (needs no `total_steps`).

    Transformers trained from scratch diverge or stall without warmup: the
    first updates of Adam are large while its second-moment estimates are
    still poor, and layer norm makes early gradients large.

    Args:
        peak_learning_rate: float. The rate reached at the end of warmup.
        warmup_steps: int. Steps of linear warmup. `0` starts at the peak.
        decay: str. One of `"constant"`, `"linear"`, `"cosine"`,
            `"inverse_sqrt"`. Defaults to `"cosine"`.
        total_steps: int. The step where `"linear"` and `"cosine"` reach
            `final_learning_rate` (and stay). Required for those two.
            Defaults to `None`.
        final_learning_rate: float. The rate at `total_steps`. Defaults to
            `0.0`.

    Example:

    >>> from keras_attention.finetune import WarmupSchedule
    >>> schedule = WarmupSchedule(1e-3, warmup_steps=10, decay="cosine", total_steps=110)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 60, 110, 200)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

    References:
        - [Vaswani et al., 2017](https://arxiv.org/abs/1706.03762)
        - [Loshchilov and Hutter, 2017](https://arxiv.org/abs/1608.03983)
    """

    def __init__(
        self,
        peak_learning_rate,
        warmup_steps,
        decay="cosine",
        total_steps=None,
        final_learning_rate=0.0,
    ):
        if decay not in DECAYS:
            raise ValueError(f"Unknown decay: {decay!r}. Expected one of {DECAYS}.")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(
                f"`warmup_steps` must be a non-negative integer. Received: warmup_steps={warmup_steps!r}"
            )
        if decay in ("linear", "cosine"):
            if total_steps is None or total_steps <= warmup_steps:
                raise ValueError(
                    f"decay={decay!r} needs `total_steps` greater than `warmup_steps`. "
                    f"Received: total_steps={total_steps!r}, warmup_steps={warmup_steps}. "
                    "Pass the number of optimizer steps of the whole run "
                    "(epochs * steps per epoch)."
                )
        if decay == "inverse_sqrt" and warmup_steps == 0:
            raise ValueError(
                "decay='inverse_sqrt' needs `warmup_steps` > 0: the rate is "
                "peak * sqrt(warmup_steps / step). Received: warmup_steps=0"
            )
        if peak_learning_rate <= 0:
            raise ValueError(
                f"`peak_learning_rate` must be positive. Received: {peak_learning_rate!r}"
            )
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.total_steps = total_steps
        self.final_learning_rate = final_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = ops.cast(self.peak_learning_rate, "float32")
        warmup_steps = float(self.warmup_steps)
        warmup = peak * step / max(warmup_steps, 1.0)
        if self.decay == "constant":
            decayed = peak
        elif self.decay == "inverse_sqrt":
            decayed = peak * ops.sqrt(warmup_steps / ops.maximum(step, 1.0))
        else:
            final = float(self.final_learning_rate)
            progress = (step - warmup_steps) / float(self.total_steps - self.warmup_steps)
            progress = ops.clip(progress, 0.0, 1.0)
            if self.decay == "linear":
                fraction = 1.0 - progress
            else:
                fraction = 0.5 * (1.0 + ops.cos(math.pi * progress))
            decayed = final + (peak - final) * fraction
        return ops.where(step < warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "total_steps": self.total_steps,
            "final_learning_rate": self.final_learning_rate,
        }
