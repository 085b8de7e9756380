"""The speech models: the two faces agree, augmentation, CTC decoding and error rates."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from applications.common.errors import UserError
from applications.speech import features
from applications.speech import keyword_spotting as kws
from applications.speech import speech_to_text as stt

TINY = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, dropout=0.0)


def _speech_like(rng, samples):
    """Tones with silent gaps: a crude stand-in for speech with pauses."""
    t = np.arange(samples) / 8000
    waveform = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 1200) * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    return waveform.astype("float32")


def test_keyword_spotting_faces_agree_and_survive_a_keras_round_trip(tmp_path):
    config = kws.settings(**TINY)
    serving, training = kws.build_models(3, config)
    waveforms = np.stack([_speech_like(np.random.default_rng(i), 8000) for i in range(4)])
    frames, _ = next(iter(kws.make_dataset(waveforms, np.zeros(4), config, training=False)))
    features.sync_embedding(training, serving)
    expected = serving.predict(waveforms, verbose=0)
    np.testing.assert_allclose(training.predict(frames, verbose=0), expected, atol=1e-4)

    serving.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded.predict(waveforms, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(kws.training_model_of(reloaded).predict(frames, verbose=0), expected, atol=1e-4)


def test_keyword_spotting_attention_maps_are_distributions():
    config = kws.settings(**TINY)
    serving, _ = kws.build_models(3, config)
    pooling, self_attention = kws.attention_maps(serving, _speech_like(np.random.default_rng(0), 8000)[None])
    frames = 8000 // config["frame_step"] + 1
    assert pooling.shape == (1, frames) and self_attention.shape == (1, frames, frames)
    np.testing.assert_allclose(pooling.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(self_attention.sum(axis=-1), 1.0, rtol=1e-4)


def test_speech_to_text_faces_agree_on_clips_of_different_lengths():
    config = stt.settings(**TINY, max_clip_seconds=2.0, batch_size=3)
    serving, training = stt.build_models(config)
    rng = np.random.default_rng(0)
    # Quantized as the pipeline stores them, so both faces see the same samples.
    waveforms = [np.round(_speech_like(rng, n) * stt.PCM_SCALE) / stt.PCM_SCALE for n in (9000, 12000, 15000)]
    utterances = stt.Utterances(waveforms, ["one", "two", "three"], ["", "", ""])
    dataset, batches = stt.make_dataset(utterances, config, training=False)
    assert batches == 1  # All three fall in the 1-2 s bucket.
    inputs, packed = next(iter(dataset))
    features.sync_embedding(training, serving)
    batch, frames = stt.pad_clips(waveforms, config)
    np.testing.assert_array_equal(packed[:, 0], frames)
    # The frame counts follow AudioFeatureEmbedding's own mask.
    normalized = features.apply_level(serving, batch)
    mask = serving.get_layer("audio_embedding").compute_mask(normalized)
    np.testing.assert_array_equal(np.asarray(mask).sum(axis=1), frames)
    served = serving.predict(batch, verbose=0)
    trained = training.predict(inputs, verbose=0)
    for i, count in enumerate(frames):
        np.testing.assert_allclose(trained[i, :count], served[i, :count], atol=1e-4)


def test_speech_to_text_batches_clips_of_about_the_same_length():
    config = stt.settings(batch_size=2)
    lengths = (4000, 5000, 6000, 9000, 20000)  # Buckets of 1 s: 3 + 1 + 1 clips.
    utterances = stt.Utterances([np.ones(n, "float32") for n in lengths], ["one"] * 5, [""] * 5)
    dataset, batches = stt.make_dataset(utterances, config, training=True)
    sizes = sorted(int(inputs["spectrogram"].shape[0]) for inputs, _ in dataset)
    assert batches == 4 and sizes == [1, 1, 1, 2]


def test_spec_augment_masks_real_frames_with_the_clip_mean():
    tf.random.set_seed(0)
    frames = tf.random.normal((4, 30, 12))
    mask = tf.sequence_mask([30, 20, 10, 0], 30)
    frames = tf.where(mask[..., None], frames, 0.0)
    augmented = features.spec_augment(frames, mask, 2, 5, 2, 3).numpy()
    changed = augmented != frames.numpy()
    assert changed.any()
    assert not changed[~mask.numpy()].any()  # Padding stays padding.
    for i, length in enumerate([30, 20, 10]):
        mean = frames.numpy()[i, :length].mean()
        np.testing.assert_allclose(augmented[i][changed[i]], mean, rtol=1e-5)


def test_time_shift_and_noise():
    tf.random.set_seed(0)
    waveforms = tf.constant(np.tile(np.arange(1, 101, dtype="float32"), (8, 1)))
    shifted = features.time_shift(waveforms, 10).numpy()
    for row in shifted:  # A shifted copy of 1..100 with zeros where it moved out.
        real = row[row > 0]
        np.testing.assert_array_equal(np.diff(real), 1.0)
        assert 90 <= len(real) <= 100
    noisy = features.add_noise(waveforms, tf.constant([50] * 8), 1.0, (20.0, 20.0)).numpy()
    noise = noisy - waveforms.numpy()
    assert (noise[:, 50:] == 0).all() and (noise[:, :50] != 0).all()
    signal_power = (waveforms.numpy()[:, :50] ** 2).mean()
    assert abs(10 * np.log10(signal_power / (noise[:, :50] ** 2).mean()) - 20.0) < 1.0


def test_speed_perturbation_resamples_about_the_centre():
    ramp = tf.constant(np.tile(np.arange(101, dtype="float32"), (4, 1)))  # Sample i holds i.
    np.testing.assert_allclose(features.speed_perturb(ramp, 1.0, 1.0).numpy()[:, :-1], ramp.numpy()[:, :-1])
    faster = features.speed_perturb(ramp, 1.2, 1.2).numpy()[0]
    # Output sample n reads input 50.5 + (n - 50.5) * 1.2: the ramp steepens about the
    # centre, and what would come from outside the clip is silence.
    real = faster != 0
    np.testing.assert_allclose(np.diff(faster[real]), 1.2, rtol=1e-4)
    assert abs(faster[50] - (50.5 - 0.5 * 1.2)) < 1e-3 and real.sum() < 90
    slower = features.speed_perturb(ramp, 0.8, 0.8).numpy()[0]
    np.testing.assert_allclose(np.diff(slower[1:-1]), 0.8, rtol=1e-4)


def test_speed_perturbation_of_padded_clips_keeps_each_clip_whole():
    clips = np.zeros((2, 100), "float32")  # Clips of 100 and 60 samples; sample i holds i + 1.
    clips[0], clips[1, :60] = np.arange(1, 101), np.arange(1, 61)
    lengths = tf.constant([100, 60])
    same, same_lengths = features.speed_perturb_clips(tf.constant(clips), lengths, 1.0, 1.0)
    np.testing.assert_allclose(same.numpy()[:, :100], clips)
    assert (same.numpy()[:, 100:] == 0).all() and same_lengths.numpy().tolist() == [100, 60]
    # Slower by 0.8: the batch widens to 125 samples; output n reads input n * 0.8 while
    # that is inside the clip (n <= 99 / 0.8 and 59 / 0.8).
    slower, slower_lengths = features.speed_perturb_clips(tf.constant(clips), lengths, 0.8, 0.8)
    assert slower.shape == (2, 125) and slower_lengths.numpy().tolist() == [124, 74]
    np.testing.assert_allclose(slower.numpy()[0, :124], 1 + 0.8 * np.arange(124), rtol=1e-5)
    np.testing.assert_allclose(slower.numpy()[1, :74], 1 + 0.8 * np.arange(74), rtol=1e-5)
    assert (slower.numpy()[1, 74:] == 0).all()
    faster, faster_lengths = features.speed_perturb_clips(tf.constant(clips), lengths, 1.25, 1.25)
    assert faster_lengths.numpy().tolist() == [80, 48]
    np.testing.assert_allclose(faster.numpy()[1, :48], 1 + 1.25 * np.arange(48), rtol=1e-5)


def test_text_encoding_round_trip():
    ids = stt.encode("Three, ONE  four!")
    assert stt.decode_ids(ids) == "three one four"
    assert 0 not in ids and stt.decode_ids([0, -1] + ids + [-1]) == "three one four"


def test_ctc_decoding_greedy_and_beam_on_hand_made_logits():
    text = "one two"
    ids = stt.encode(text)
    # One frame per label with a blank between equal neighbours and at the ends.
    path = [0] + [x for i in ids for x in (i, 0)]
    logits = np.full((1, len(path) + 3, len(stt.VOCABULARY) + 1), -10.0, "float32")
    logits[0, np.arange(len(path)), path] = 10.0
    logits[0, len(path):, 0] = 10.0  # Padded frames beyond the length are ignored anyway.
    for strategy in ("greedy", "beam_search"):
        decoded, _ = keras.ops.ctc_decode(logits, np.array([len(path)]), strategy=strategy, beam_width=4)
        assert stt.decode_ids(np.asarray(decoded)[0, 0]) == text


def test_ctc_loss_of_packed_targets_matches_keras_ctc_when_all_frames_are_real():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 12, len(stt.VOCABULARY) + 1)).astype("float32")
    labels = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
    packed = np.concatenate([np.full((2, 1), 12, "int32"), labels], axis=1)
    ours = keras.ops.convert_to_numpy(stt.ctc_loss(packed, logits))
    reference = keras.ops.convert_to_numpy(keras.losses.CTC(reduction=None)(labels, logits))
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    # Fewer real frames: the loss ignores the rest.
    shorter = packed.copy()
    shorter[:, 0] = 8
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stt.ctc_loss(shorter, logits)),
                               keras.ops.convert_to_numpy(stt.ctc_loss(shorter, logits[:, :8])), rtol=1e-5)


def test_error_rates_golden_values():
    assert stt.edit_distance("kitten", "sitting") == 3
    cer, wer = stt.error_rates(["one two three", "four"], ["one two three", "for five"])
    assert cer == pytest.approx(6 / 17) and wer == pytest.approx(2 / 4)
    assert stt.error_rates([""], [""]) == (0.0, 0.0)


def test_error_rates_normalize_whitespace_on_both_sides():
    # Spaces that a decoder doubles or leaves at the ends are not errors (the old code
    # counted 4 + 1 of them here: CER 5/11), nor are the reference's own.
    assert stt.error_rates(["one two", "four"], ["  one  two ", "four "]) == (0.0, 0.0)
    assert stt.error_rates([" one  two "], ["one two"]) == (0.0, 0.0)
    # A real error is counted over the normalized lengths: "one two" -> "one tw", 1 of 7
    # characters and 1 of 2 words.
    cer, wer = stt.error_rates(["one two"], [" one  tw "])
    assert cer == pytest.approx(1 / 7) and wer == pytest.approx(1 / 2)


def test_long_audio_is_cut_at_quiet_points_under_the_limit():
    config = stt.settings(max_clip_seconds=8.0)
    rng = np.random.default_rng(0)
    # Ten minutes of 1-s "words" separated by 0.3-s pauses.
    word, pause = np.ones(8000, "float32"), np.zeros(2400, "float32")
    waveform = np.concatenate([np.concatenate([word * rng.uniform(0.2, 1), pause]) for _ in range(577)])
    assert len(waveform) / 8000 >= 600
    pieces = stt.split_long(waveform, config)
    assert sum(len(p) for p in pieces) == len(waveform)
    assert all(len(p) <= 8 * 8000 for p in pieces) and len(pieces) >= 75
    for piece in pieces[:-1]:  # Every cut falls inside a pause.
        assert piece[-1] == 0.0


def test_clips_too_long_or_too_short_for_ctc_are_dropped_and_none_left_is_an_error():
    config = stt.settings(max_clip_seconds=1.0)
    utterances = stt.Utterances([np.ones(4000), np.ones(9000), np.ones(200)],
                                ["one", "two", "a long transcript"], ["", "", ""])
    kept = stt.usable(utterances, config, quiet=True)
    assert kept.texts == ["one"]
    with pytest.raises(UserError, match="No usable clip"):
        stt.usable(stt.Utterances([np.ones(100)], ["seven"], [""]), config, quiet=True)
    with pytest.raises(UserError, match="longer than the model's 1 s"):
        stt.pad_clips([np.ones(9000)], config)
