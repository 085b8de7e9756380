"""Fine-tuning kit: learning-rate schedules, callbacks, LoRA and freezing."""

from keras_attention.finetune.attention_map_logger import AttentionMapLogger
from keras_attention.finetune.freezing import freeze
from keras_attention.finetune.freezing import matching_layers
from keras_attention.finetune.freezing import unfreeze
from keras_attention.finetune.gradual_unfreezing import GradualUnfreezing
from keras_attention.finetune.layerwise import layerwise_optimizer
from keras_attention.finetune.lora import apply_lora
from keras_attention.finetune.lora import merge_lora
from keras_attention.finetune.lora import restart_lora
from keras_attention.finetune.scaled_schedule import ScaledSchedule
from keras_attention.finetune.warmup_schedule import WarmupSchedule

__all__ = [
    "AttentionMapLogger",
    "GradualUnfreezing",
    "ScaledSchedule",
    "WarmupSchedule",
    "apply_lora",
    "freeze",
    "layerwise_optimizer",
    "matching_layers",
    "merge_lora",
    "restart_lora",
    "unfreeze",
]
