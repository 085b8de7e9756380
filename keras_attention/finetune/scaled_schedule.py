import keras


@keras.saving.register_keras_serializable(package="keras_attention")
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule multiplied by a constant factor.

    Args:
        schedule: a `LearningRateSchedule`.
        factor: float. The multiplier.

    Example:

    >>> import keras
    >>> from keras_attention.finetune import ScaledSchedule
    >>> schedule = keras.optimizers.schedules.ExponentialDecay(1.0, 10, 0.5)
    >>> float(ScaledSchedule(schedule, 0.1)(10))
    0.05
    """

    def __init__(self, schedule, factor):
        self.schedule = schedule
        self.factor = factor

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "factor": self.factor,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)
