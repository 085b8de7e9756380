"""Audio to frame embeddings: log-mel features and a linear projection."""

import numbers

import keras
from keras import ops

from keras_attention.layers.sinusoidal_position_encoding import SinusoidalPositionEncoding

INPUT_TYPES = ("waveform", "spectrogram")
# Added to the mel power before the log: -13.8 for silence, no -inf.
LOG_OFFSET = 1e-6
# The lowest mel band starts here, as in `keras.layers.MelSpectrogram`.
MIN_FREQUENCY = 20.0


@keras.saving.register_keras_serializable(package="keras_attention")
class AudioFeatureEmbedding(keras.layers.Layer):
    """Turn audio into a sequence of frame embeddings for a Transformer.

    With `input_type="waveform"`, takes mono audio `(B, samples)` at
    `sample_rate`, computes a log-mel spectrogram (Hann windows of
    `frame_length` samples every `frame_step` samples, centred on sample
    `t * frame_step`, an FFT of the next power of two, `num_mel_bins` HTK
    mel bands from 20 Hz to `sample_rate / 2`, then `log(power + 1e-6)`),
    and projects each frame linearly to `hidden_dim`. With
    `input_type="spectrogram"`, takes precomputed log-scaled frames
    `(B, frames, bins)` (for example log-mel frames after SpecAugment in the
    data pipeline) and only projects them. A fixed sinusoidal position
    encoding is then added, unless `use_position_encoding=False`.

    The waveform and the spectrogram stay in float32 under every dtype
    policy (samples and mel powers overflow float16); the projection runs
    in the compute dtype. A waveform of `S` samples gives
    `1 + S // frame_step` frames. The features of one clip depend on that
    clip only (no batch-wide normalization), so zero-padding a clip changes
    only its last frames; they range from -13.8 (silence) to about
    `2 * log(amplitude * frame_length / 4)`. `layer.log_mel_spectrogram(audio)`
    returns them, for pictures or for feeding a `"spectrogram"` layer.

    **Padding.** Batches of clips of different lengths are padded, and the
    padded frames should be masked downstream. Pass `mask` (True = real
    sample, `(B, samples)`; or real frame, `(B, frames)`, for spectrograms),
    or set `mask_zero=True` to treat trailing zeros as padding: a frame is
    real if its centre sample is at or before the clip's last nonzero
    sample (for spectrograms: up to the last frame that is not all zeros).
    Leading silence is not masked. The output then carries the frame-level
    padding mask `(B, frames)` as its implicit Keras mask, for the
    masking-aware layers downstream (in a functional model);
    `layer.compute_mask(inputs, mask)` returns it, to pass explicitly as a
    `padding_mask`.

    Args:
        hidden_dim: int. The size of each frame embedding.
        input_type: str. `"waveform"` (`(B, samples)`, or `(B, samples, 1)`)
            or `"spectrogram"` (`(B, frames, bins)`). Defaults to
            `"waveform"`.
        sample_rate: int. Samples per second of the waveform. Defaults to
            `16000`.
        frame_length: int. Samples per analysis window. Defaults to `400`
            (25 ms at 16 kHz).
        frame_step: int. Samples between window centres. Defaults to `160`
            (10 ms at 16 kHz).
        num_mel_bins: int. Mel bands of the log-mel features. Defaults to `40`.
        mask_zero: bool. Treat trailing zeros as padding and mask them.
            Defaults to `False`.
        use_position_encoding: bool. Add a sinusoidal position encoding to
            the frame embeddings. Defaults to `True`.
        **kwargs: other arguments of `keras.layers.Layer`, such as `name` and
            `dtype`.

    Call arguments:
        inputs: a waveform `(B, samples)` or spectrogram frames
            `(B, frames, bins)`, per `input_type`.
        mask: optional boolean padding mask of the input, True where real,
            `(B, samples)` or `(B, frames)`. Also read from the input's
            implicit Keras mask. Wins over `mask_zero`.

    Returns:
        Frame embeddings `(B, frames, hidden_dim)` in the compute dtype, with
        a `(B, frames)` implicit mask when there is padding to mask.

    Example:

    >>> import numpy as np
    >>> import keras
    >>> from keras_attention.layers import AudioFeatureEmbedding
    >>> audio = np.zeros((2, 4000), dtype="float32")  # 0.5 s at 8 kHz
    >>> audio[0, :2000] = np.sin(2 * np.pi * 440 * np.arange(2000) / 8000)
    >>> audio[1, :3000] = np.sin(2 * np.pi * 880 * np.arange(3000) / 8000)
    >>> layer = AudioFeatureEmbedding(
    ...     hidden_dim=64, sample_rate=8000, frame_length=200, frame_step=80,
    ...     mask_zero=True)
    >>> tuple(layer(audio).shape)
    (2, 51, 64)
    >>> frame_mask = keras.ops.convert_to_numpy(layer.compute_mask(audio))
    >>> frame_mask.sum(axis=1).tolist()
    [25, 38]

    References:
        - [Berg et al., 2021](https://arxiv.org/abs/2104.00769) (Keyword
          Transformer)
        - [Gulati et al., 2020](https://arxiv.org/abs/2005.08100)
    """

    def __init__(
        self,
        hidden_dim,
        input_type="waveform",
        sample_rate=16000,
        frame_length=400,
        frame_step=160,
        num_mel_bins=40,
        mask_zero=False,
        use_position_encoding=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if input_type not in INPUT_TYPES:
            raise ValueError(f"Unknown input_type: {input_type!r}. Expected one of {INPUT_TYPES}.")
        for name, value in (
            ("hidden_dim", hidden_dim),
            ("sample_rate", sample_rate),
            ("frame_length", frame_length),
            ("frame_step", frame_step),
            ("num_mel_bins", num_mel_bins),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
        self.hidden_dim = int(hidden_dim)
        self.input_type = input_type
        self.sample_rate = int(sample_rate)
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.num_mel_bins = int(num_mel_bins)
        self.mask_zero = bool(mask_zero)
        self.use_position_encoding = bool(use_position_encoding)
        self.supports_masking = True

    @property
    def input_dtype(self):
        # Keras casts float inputs to `input_dtype` before `call`; keep the
        # waveform in float32 (float16 overflows at 65504 and adds noise at
        # -66 dB), the projection still runs in the compute dtype.
        return "float32" if self.input_type == "waveform" else self.compute_dtype

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.input_type == "waveform":
            is_mono = len(input_shape) == 2 or (len(input_shape) == 3 and input_shape[2] == 1)
            if not is_mono:
                raise ValueError(
                    'AudioFeatureEmbedding(input_type="waveform") expects mono audio of '
                    f"shape (B, samples). Received: input_shape={input_shape}. Mix "
                    "multi-channel audio down to one channel (for example the mean "
                    'over channels), or use input_type="spectrogram" for (B, frames, bins).'
                )
            num_samples = input_shape[1]
            fft_length = self._fft_length()
            if num_samples is not None and num_samples <= fft_length // 2:
                raise ValueError(
                    f"The waveform has {num_samples} samples; centred frames of "
                    f"frame_length={self.frame_length} (FFT size {fft_length}) need more "
                    f"than {fft_length // 2}. Pad the clips with zeros to at least "
                    f"{fft_length // 2 + 1} samples or use a shorter `frame_length`."
                )
            # The spectrogram stays in float32 under mixed precision: mel
            # powers reach 1e5 and more for loud frames, past float16's 65504.
            self.mel_spectrogram = keras.layers.MelSpectrogram(
                fft_length=fft_length,
                sequence_stride=self.frame_step,
                sequence_length=self.frame_length,
                window="hann",
                sampling_rate=self.sample_rate,
                num_mel_bins=self.num_mel_bins,
                min_freq=MIN_FREQUENCY,
                max_freq=self.sample_rate / 2,
                power_to_db=False,
                dtype="float32",
                name="mel_spectrogram",
            )
            self.mel_spectrogram.build((None, num_samples))
            feature_dim = self.num_mel_bins
        else:
            if len(input_shape) != 3 or input_shape[2] is None:
                raise ValueError(
                    'AudioFeatureEmbedding(input_type="spectrogram") expects frames of '
                    f"shape (B, frames, bins) with a known number of bins. Received: "
                    f'input_shape={input_shape}. For raw audio use input_type="waveform".'
                )
            feature_dim = input_shape[2]

        self.projection = keras.layers.Dense(self.hidden_dim, dtype=self.dtype_policy, name="projection")
        self.projection.build((None, None, feature_dim))
        if self.use_position_encoding:
            self.position_encoding = SinusoidalPositionEncoding(dtype=self.dtype_policy, name="position_encoding")
            self.position_encoding.build((None, None, self.hidden_dim))
        self.built = True

    def call(self, inputs, mask=None):
        if self.input_type == "waveform":
            features = self.log_mel_spectrogram(inputs)  # [B, frames, bins]
        else:
            features = inputs  # [B, frames, bins]
        outputs = self.projection(features)  # [B, frames, D]
        if self.use_position_encoding:
            outputs = outputs + self.position_encoding(outputs)
        return outputs

    def log_mel_spectrogram(self, waveform):
        """Return the log-mel features the layer projects, in float32.

        For pictures (attention over the frames) or to compute features
        outside the model for a `input_type="spectrogram"` layer with the
        same settings.

        Args:
            waveform: mono audio, `(B, samples)` or `(B, samples, 1)`.

        Returns:
            `log(mel power + 1e-6)`, float32, `(B, frames, num_mel_bins)`.
        """
        if self.input_type != "waveform":
            raise ValueError(
                'log_mel_spectrogram() needs a layer with input_type="waveform". '
                f"Received: input_type={self.input_type!r}"
            )
        if not self.built:
            self.build(waveform.shape)
        waveform = ops.cast(waveform, "float32")
        if len(waveform.shape) == 3:
            waveform = ops.squeeze(waveform, axis=-1)  # [B, samples]
        mel_power = self.mel_spectrogram(waveform)  # [B, bins, frames]
        mel_power = ops.transpose(mel_power, (0, 2, 1))  # [B, frames, bins]
        return ops.log(mel_power + LOG_OFFSET)  # [B, frames, bins]

    def compute_mask(self, inputs, mask=None):
        if mask is not None:
            input_mask = ops.cast(mask, "bool")
            if len(input_mask.shape) != 2:
                unit = "samples" if self.input_type == "waveform" else "frames"
                raise ValueError(
                    f"`mask` must be a boolean padding mask of shape (B, {unit}), "
                    f"True where the input is real. Received: mask.shape={tuple(input_mask.shape)}"
                )
        elif self.mask_zero:
            input_mask = _trailing_zero_mask(inputs, self.input_type)
        else:
            return None
        if self.input_type == "spectrogram":
            return input_mask  # [B, frames]
        # Frame t is centred on sample t * frame_step, t = 0 ... S // step;
        # the last centre may fall on sample S, one past the end: it takes the
        # last sample's value. A strided max pool of width 1 picks samples
        # 0, step, 2 step, ... and keeps working when S is unknown (None).
        input_mask = ops.concatenate([input_mask, input_mask[:, -1:]], axis=1)  # [B, S + 1]
        input_mask = ops.cast(input_mask, "float32")[..., None]  # [B, S + 1, 1]
        frame_mask = ops.max_pool(input_mask, pool_size=1, strides=self.frame_step, padding="valid")
        return ops.greater(frame_mask[..., 0], 0.5)  # [B, frames]

    def compute_output_shape(self, input_shape):
        num_frames = input_shape[1]
        if self.input_type == "waveform" and num_frames is not None:
            num_frames = num_frames // self.frame_step + 1
        return (input_shape[0], num_frames, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "input_type": self.input_type,
                "sample_rate": self.sample_rate,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "num_mel_bins": self.num_mel_bins,
                "mask_zero": self.mask_zero,
                "use_position_encoding": self.use_position_encoding,
            }
        )
        return config

    def _fft_length(self):
        """The next power of two of `frame_length` (512 for 400)."""
        return 1 << (self.frame_length - 1).bit_length()


def _trailing_zero_mask(inputs, input_type):
    """True up to each example's last nonzero sample (or frame), `(B, T)`."""
    if input_type == "waveform":
        waveform = ops.squeeze(inputs, axis=-1) if len(inputs.shape) == 3 else inputs
        nonzero = ops.not_equal(waveform, 0)  # [B, samples]
    else:
        nonzero = ops.any(ops.not_equal(inputs, 0), axis=-1)  # [B, frames]
    # Positions 1 ... T from a cumulative sum, so that T may be unknown (None).
    positions = ops.cumsum(ops.ones_like(nonzero, dtype="int32"), axis=1)  # [B, T]
    lengths = ops.max(ops.where(nonzero, positions, 0), axis=1, keepdims=True)  # [B, 1]
    return ops.less_equal(positions, lengths)  # [B, T]
