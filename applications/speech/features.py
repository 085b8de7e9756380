"""Log-mel features and augmentation, shared by the two speech models.

A speech model here has two faces that share every layer but the first:
- the *serving model* takes raw audio `(B, samples)`, sets its level
  (`UnitNormalization` to unit L2 norm, then `Rescaling` by a fixed `level`,
  so that loudness does not matter and speech sits well above the log floor
  of the features), then `AudioFeatureEmbedding(input_type="waveform")`, which computes log-mel
  frames and projects them. This is the model saved as `model.keras`, so a
  saved model needs nothing but `keras_attention` to run.
- the *training model* takes log-mel frames `(B, frames, bins)` computed here,
  in the `tf.data` pipeline, with the same normalization and by
  `AudioFeatureEmbedding`'s own `log_mel_spectrogram` and `compute_mask` (a
  test checks that both faces give the same outputs), so that
  SpecAugment-style masking can act on the spectrogram before the
  projection: `AudioFeatureEmbedding(input_type="spectrogram")`.
  For clips of different lengths (speech to text) the training face also
  takes the frame mask, computed by the rule the waveform face uses with
  `mask_zero=True`: a frame is real if its centre sample is at or before the
  clip's last nonzero sample.
Both embeddings hold the same weights (one projection); `sync_embedding`
copies them from the training face to the serving face.

Augmentation (training only): a random speed change (keyword spotting), a
random time shift and added Gaussian noise on the waveform, then time and
frequency masks on the log-mel frames (Park et al. 2019, SpecAugment), filled
with the clip's mean feature value.
"""

import keras
import tensorflow as tf

from keras_attention.layers import AudioFeatureEmbedding


def level_layers(level):
    """The layers that set a clip's level: unit L2 norm, then times `level`.

    In float32 whatever the dtype policy: a norm over 16,000 samples in bfloat16 is off by
    up to a percent, and the data pipeline's features must be float32.
    """
    return (keras.layers.UnitNormalization(axis=-1, name="normalize", dtype="float32"),
            keras.layers.Rescaling(level, name="level", dtype="float32"))


def apply_level(model, waveforms):
    """Run the level layers of a serving model on waveforms `(B, samples)`."""
    return model.get_layer("level")(model.get_layer("normalize")(waveforms))


def embedding_pair(hidden_dim, sample_rate, frame_length, frame_step, num_mel_bins, mask_zero):
    """The serving (waveform) and training (spectrogram) audio embeddings."""
    shared = dict(hidden_dim=hidden_dim, sample_rate=sample_rate, frame_length=frame_length,
                  frame_step=frame_step, num_mel_bins=num_mel_bins, mask_zero=mask_zero)
    waveform = AudioFeatureEmbedding(input_type="waveform", name="audio_embedding", **shared)
    spectrogram = AudioFeatureEmbedding(input_type="spectrogram", name="spectrogram_embedding",
                                        **{**shared, "mask_zero": False})
    return waveform, spectrogram


def sync_embedding(training_model, serving_model):
    """Copy the trained projection into the serving model's waveform embedding."""
    source = training_model.get_layer("spectrogram_embedding")
    serving_model.get_layer("audio_embedding").set_weights(source.get_weights())


def spectrogram_embedding_like(audio_embedding):
    """A spectrogram embedding with the settings and weights of a waveform one."""
    config = audio_embedding.get_config()
    config.update(input_type="spectrogram", mask_zero=False, name="spectrogram_embedding")
    config.pop("dtype", None)
    layer = AudioFeatureEmbedding(**config)
    layer.build((None, None, audio_embedding.num_mel_bins))
    layer.set_weights(audio_embedding.get_weights())
    return layer


class LogMel:
    """Waveforms -> log-mel frames and frame mask, computed by `AudioFeatureEmbedding` itself.

    Args:
        sample_rate, frame_length, frame_step, num_mel_bins: as for
            `AudioFeatureEmbedding`.
        level: float. The clip's L2 norm after `level_layers`.

    Call `features(waveforms, lengths)` on a batch `(B, samples)` of zero-padded
    clips and their lengths `(B,)` (the last nonzero sample + 1); returns
    `(B, frames, bins)` float32 with padded frames set to 0, and the frame
    mask `(B, frames)`. The features are the layer's `log_mel_spectrogram` and
    the mask its `compute_mask` (a frame is real if its centre is before
    `length`), so the two faces of a model cannot drift apart.
    """

    def __init__(self, sample_rate, frame_length, frame_step, num_mel_bins, level):
        self.frame_step = frame_step
        self.normalize, self.level = level_layers(level)
        # Only its features and mask are used; the 1-unit projection is never called.
        self.embedding = AudioFeatureEmbedding(
            1, input_type="waveform", sample_rate=sample_rate, frame_length=frame_length,
            frame_step=frame_step, num_mel_bins=num_mel_bins, use_position_encoding=False,
            dtype="float32")  # Data-pipeline features stay float32 under mixed precision.
        self.embedding.build((None, None))

    def features(self, waveforms, lengths):
        waveforms = self.level(self.normalize(tf.convert_to_tensor(waveforms, tf.float32)))  # [B, samples]
        features = self.embedding.log_mel_spectrogram(waveforms)  # [B, frames, bins]
        samples = tf.range(tf.shape(waveforms)[1])[None, :] < tf.cast(lengths, tf.int32)[:, None]  # [B, samples]
        mask = self.embedding.compute_mask(waveforms, samples)  # [B, frames]
        return tf.where(mask[..., None], features, 0.0), mask


def last_nonzero_lengths(waveforms):
    """Index of each clip's last nonzero sample + 1 (0 for silence), `(B,)`."""
    nonzero = tf.not_equal(waveforms, 0.0)  # [B, samples]
    positions = tf.range(1, tf.shape(waveforms)[1] + 1)
    return tf.reduce_max(tf.where(nonzero, positions[None, :], 0), axis=1)


def time_shift(waveforms, max_shift):
    """Shift each clip by up to `max_shift` samples left or right, zero-filled.

    Only for fixed-length clips (keyword spotting); returns the new waveforms.
    """
    batch, samples = tf.shape(waveforms)[0], tf.shape(waveforms)[1]
    shifts = tf.random.uniform((batch,), -max_shift, max_shift + 1, tf.int32)
    positions = tf.range(samples)[None, :] - shifts[:, None]  # [B, samples] source index
    valid = (positions >= 0) & (positions < samples)
    gathered = tf.gather(waveforms, tf.clip_by_value(positions, 0, samples - 1), batch_dims=1)
    return tf.where(valid, gathered, 0.0)


def speed_perturb(waveforms, low, high):
    """Play each clip `f` times faster, `f` drawn from `[low, high]` (tempo and pitch together).

    Resampled by linear interpolation about the clip's centre, zero-filled;
    for fixed-length clips (keyword spotting). A cheap stand-in for new
    speakers: a factor of 1.1 raises every formant by 10 %, as a shorter vocal tract does.
    """
    batch, samples = tf.shape(waveforms)[0], tf.shape(waveforms)[1]
    factors = tf.random.uniform((batch, 1), low, high)
    centre = tf.cast(samples, tf.float32) / 2.0
    source = centre + (tf.cast(tf.range(samples), tf.float32)[None, :] - centre) * factors  # [B, samples]
    return _interpolate(waveforms, source, samples)


def speed_perturb_clips(waveforms, lengths, low, high):
    """`speed_perturb` for a zero-padded batch of clips of different lengths (speech to text).

    Each clip is resampled from its start, so it keeps its place in the
    batch; the batch widens by `1 / low` so that a slowed clip keeps its end.
    Returns the new waveforms `(B, ceil(samples / low))` and their lengths
    (last nonzero sample + 1).
    """
    batch, samples = tf.shape(waveforms)[0], tf.shape(waveforms)[1]
    factors = tf.random.uniform((batch, 1), low, high)
    width = tf.cast(tf.math.ceil(tf.cast(samples, tf.float32) / low), tf.int32)
    source = tf.cast(tf.range(width), tf.float32)[None, :] * factors  # [B, width]
    resampled = _interpolate(waveforms, source, tf.cast(lengths, tf.int32)[:, None])
    return resampled, last_nonzero_lengths(resampled)


def _interpolate(waveforms, source, limit):
    """Each row of `waveforms` linearly interpolated at the positions `source`, zero at
    positions outside `[0, limit - 1]` (`limit`: the samples, or each clip's length `(B, 1)`)."""
    samples = tf.shape(waveforms)[1]
    valid = (source >= 0.0) & (source <= tf.cast(limit, tf.float32) - 1.0)
    left = tf.floor(source)
    weight = source - left
    left = tf.cast(left, tf.int32)
    gather = lambda index: tf.gather(waveforms, tf.clip_by_value(index, 0, samples - 1), batch_dims=1)
    resampled = gather(left) * (1.0 - weight) + gather(left + 1) * weight
    return tf.where(valid, resampled, 0.0)


def add_noise(waveforms, lengths, probability, snr_db):
    """Add white noise at a random signal-to-noise ratio to the real samples."""
    batch, samples = tf.shape(waveforms)[0], tf.shape(waveforms)[1]
    real = tf.range(samples)[None, :] < tf.cast(lengths, tf.int32)[:, None]
    count = tf.maximum(tf.cast(lengths, tf.float32), 1.0)
    signal_power = tf.reduce_sum(tf.where(real, tf.square(waveforms), 0.0), axis=1) / count  # [B]
    snr = tf.random.uniform((batch,), snr_db[0], snr_db[1])
    noise_std = tf.sqrt(signal_power / tf.pow(10.0, snr / 10.0))
    apply = tf.cast(tf.random.uniform((batch,)) < probability, tf.float32)
    noise = tf.random.normal((batch, samples)) * (noise_std * apply)[:, None]
    return waveforms + tf.where(real, noise, 0.0)


def spec_augment(features, mask, time_masks, time_mask_frames, frequency_masks, frequency_mask_bins):
    """Mask random spans of frames and of mel bins with the clip's mean value."""
    batch, frames, bins = tf.shape(features)[0], tf.shape(features)[1], tf.shape(features)[2]
    real = tf.cast(mask, tf.float32)[..., None]  # [B, frames, 1]
    mean = tf.reduce_sum(features * real, axis=(1, 2)) / tf.maximum(
        tf.reduce_sum(real, axis=(1, 2)) * tf.cast(bins, tf.float32), 1.0)  # [B]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # [B]
    masked = tf.zeros((batch, frames, bins), tf.bool)
    for _ in range(time_masks):
        width = tf.random.uniform((batch,), 0, time_mask_frames + 1, tf.int32)
        start = tf.cast(tf.random.uniform((batch,)) * tf.cast(tf.maximum(lengths - width, 1), tf.float32), tf.int32)
        position = tf.range(frames)[None, :]
        span = (position >= start[:, None]) & (position < (start + width)[:, None])  # [B, frames]
        masked |= span[:, :, None]
    for _ in range(frequency_masks):
        width = tf.random.uniform((batch,), 0, frequency_mask_bins + 1, tf.int32)
        start = tf.cast(tf.random.uniform((batch,)) * tf.cast(tf.maximum(bins - width, 1), tf.float32), tf.int32)
        position = tf.range(bins)[None, :]
        span = (position >= start[:, None]) & (position < (start + width)[:, None])  # [B, bins]
        masked |= span[:, None, :]
    masked &= mask[..., None]
    return tf.where(masked, mean[:, None, None], features)
