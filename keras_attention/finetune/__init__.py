"""Fine-tuning kit: learning-rate schedules, callbacks, LoRA and freezing."""

from keras_attention.finetune.warmup_schedule import WarmupSchedule

__all__ = ["WarmupSchedule"]
