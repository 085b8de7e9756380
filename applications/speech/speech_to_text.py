"""Speech to text: an attention encoder with a CTC head over characters.

Log-mel frames of 20 ms (`AudioFeatureEmbedding`) go through pre-norm
`TransformerEncoder` blocks to `CTCHead`, which scores, for every frame, each
character of `VOCABULARY` and the CTC blank. Training minimizes the CTC loss
(Graves et al. 2006); decoding is greedy (best label per frame, repeats merged,
blanks dropped) or a beam search (`keras.ops.ctc_decode`). Results are the
character and word error rates (CER, WER: edit distance over the reference
length).

The first task is spoken digit sequences ("three one four one five"). The
training speech is synthesized with espeak-ng (`synthesis.py`: many voices,
speeds and pitches); real speech comes from FSDD recordings joined into
sequences, from speakers other than the held-out one. The test sets are
espeak-ng voices never used in training, and sequences joined from the
recordings of the held-out FSDD speaker.

Result and cost (2-core CPU shared with other jobs, seed 0; see
`benchmarks/results/speech.md`): the 30 epochs over the 4,500 training clips cost 82
CPU-minutes with evaluation (about 2.7 each; 90 minutes of wall time beside two other
jobs). CER 2.07% (beam) on unseen voices and 13.24% on the unseen FSDD speaker (targets 3%
and 15%: met; 10 epochs without the speed change gave 9.6% and 31.5%).
"""

import re
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from applications.common import training as common_training
from applications.common.errors import UserError
from applications.speech import audio
from applications.speech import data
from applications.speech import features
from applications.speech import synthesis
from keras_attention.heads import CTCHead
from keras_attention.layers import TransformerEncoder

# === Settings ===
SAMPLE_RATE = 8000  # Hz: FSDD's rate (telephone band); espeak-ng's 22.05 kHz is resampled.
MAX_CLIP_SECONDS = 8.0  # Serving input length; longer audio is cut at quiet points.
FRAME_LENGTH = 256  # Samples per log-mel window: 32 ms.
FRAME_STEP = 160  # Samples between frames: 20 ms, so "seven " (6 labels) gets ~15 frames.
LEVEL = 15.0  # Clips are scaled to unit L2 norm, then by this: RMS 0.1 over a 3-s clip at 8 kHz.
NUM_MEL_BINS = 40
CONV_KERNEL = 5  # A residual Conv1D over this many frames before the encoder (0: none): local context.
VOCABULARY = " 'abcdefghijklmnopqrstuvwxyz"  # Index i + 1; 0 is the CTC blank.
HIDDEN_DIM = 96  # An epoch costs 2.2 CPU-minutes at 96, 2.8 at 128.
NUM_LAYERS = 4
NUM_HEADS = 4
INTERMEDIATE_DIM = 192
DROPOUT = 0.1
EPOCHS = 30  # About 2.7 CPU-minutes each (4,500 clips).
BATCH_SIZE = 32
LEARNING_RATE = 2e-3  # Peak of the warmup + cosine schedule (AdamW).
WARMUP_FRACTION = 0.08
WEIGHT_DECAY = 0.01
FINETUNE_EPOCHS = 10  # finetune: fewer passes at a lower peak rate.
FINETUNE_LEARNING_RATE = 3e-4
SPEED_RANGE = (0.9, 1.1)  # Random speed (tempo and pitch) factor: new voices and speakers (Ko et al. 2015).
NOISE_PROBABILITY = 0.7  # Share of clips that get white noise...
NOISE_SNR_DB = (10.0, 40.0)  # ...at a signal-to-noise ratio from this range.
TIME_MASKS, TIME_MASK_FRAMES = 2, 5  # SpecAugment: up to 2 masks of up to 100 ms...
FREQUENCY_MASKS, FREQUENCY_MASK_BINS = 2, 5  # ...and up to 2 masks of up to 5 mel bands.
# The default corpus, synthesized on first use into the data directory.
CORPUS_TRAIN_CLIPS = 3000  # Digit sequences spoken by `synthesis.TRAIN_VOICES`...
CORPUS_TEST_CLIPS = 300  # ...and by `synthesis.HELD_OUT_VOICES`, never heard in training.
MIN_DIGITS, MAX_DIGITS = 3, 7  # Digits per sequence.
FSDD_TRAIN_SEQUENCES = 1500  # Real speech: joined FSDD recordings of the training speakers.
FSDD_TEST_SEQUENCES = 300  # Joined recordings of the held-out speaker.
HOLDOUT_SPEAKER = "lucas"  # The FSDD speaker kept out of training.
VALIDATION_FRACTION = 0.1  # Of a corpus with no test/ part of its own.
BEAM_WIDTH = 16  # Beam search width.
PCM_SCALE = 16384.0  # Training audio is held as 16-bit PCM at half scale (resampling overshoots 1.0).


def settings(**overrides):
    """The recipe's settings as a dict (what `settings.json` records)."""
    values = {name.lower(): value for name, value in globals().items() if name.isupper()
              and isinstance(value, (int, float, str, tuple))}
    values.update(overrides)
    return values


# === Data ===


def normalize_text(text, vocabulary=VOCABULARY):
    """Lower-case, keep the vocabulary's characters, one space between words.

    Example:
    >>> normalize_text("Three, ONE  four!")
    'three one four'
    """
    text = "".join(c if c in vocabulary else " " for c in text.lower())
    return re.sub(r"\s+", " ", text).strip()


def encode(text, vocabulary=VOCABULARY):
    """Text -> label ids (1-based; 0 is the blank)."""
    return [vocabulary.index(c) + 1 for c in normalize_text(text, vocabulary)]


def decode_ids(ids, vocabulary=VOCABULARY):
    """Label ids -> text; blanks (0) and padding (-1) are dropped."""
    return "".join(vocabulary[i - 1] for i in ids if 0 < i <= len(vocabulary))


def default_corpus(folder, config, seed=0):
    """Synthesize the default digit-sequence corpus into `folder` (train/ and test/)."""
    folder = Path(folder)
    for part, count, voices, part_seed in (
        ("train", config["corpus_train_clips"], synthesis.TRAIN_VOICES, seed),
        ("test", config["corpus_test_clips"], synthesis.HELD_OUT_VOICES, seed + 1),
    ):
        if (folder / part / data.TRANSCRIPT_FILE).exists():
            continue
        print(f"Synthesizing {count} digit sequences with espeak-ng into {folder / part} ...")
        lines = synthesis.digit_sequences(count, config["min_digits"], config["max_digits"], seed=part_seed)
        work = folder / f".{part}.partial"
        shutil.rmtree(work, ignore_errors=True)
        try:
            synthesis.synthesize_corpus(lines, work, voices=voices, seed=part_seed)
        except OSError as error:
            raise UserError(f"Could not write the speech corpus to {folder}: {error}. Make "
                            "KERAS_ATTENTION_DATA writable, or write one with `keras-attention synthesize` "
                            "and pass it with --data.") from None
        work.replace(folder / part)
    return folder


def corpus_split(path, split, config):
    """The transcribed clips of one split of a corpus folder.

    A corpus with `train/` and `test/` parts uses them; a single corpus is
    split at random (`data.SPLIT_SEED`, `validation_fraction` to the test split).
    """
    path = Path(path)
    if (path / "train" / data.TRANSCRIPT_FILE).exists() and (path / "test" / data.TRANSCRIPT_FILE).exists():
        if split == "all":
            return data.transcribed_clips(path / "train") + data.transcribed_clips(path / "test")
        return data.transcribed_clips(path / split)
    clips = data.transcribed_clips(path)
    if split == "all":
        return clips
    order = np.random.default_rng(data.SPLIT_SEED).permutation(len(clips))
    held_out = set(order[: max(1, int(round(len(clips) * config["validation_fraction"])))].tolist())
    return [clip for i, clip in enumerate(clips) if (i in held_out) == (split == "test")]


class Utterances:
    """Waveforms (int16, at the model's rate) with their transcripts and speakers."""

    def __init__(self, waveforms=(), texts=(), speakers=()):
        self.waveforms, self.texts, self.speakers = list(waveforms), list(texts), list(speakers)

    def __len__(self):
        return len(self.texts)

    def __add__(self, other):
        return Utterances(self.waveforms + other.waveforms, self.texts + other.texts,
                          self.speakers + other.speakers)

    @classmethod
    def from_clips(cls, clips, config):
        waveforms = data.load_waveforms(clips, config["sample_rate"], max_seconds=None)
        return cls(waveforms, [clip.label for clip in clips], [clip.speaker for clip in clips])


def fsdd_sequences(path, speakers, count, config, seed):
    """Digit sequences joined from the FSDD recordings of `speakers`."""
    clips = [clip for clip in data.fsdd_clips(path) if clip.speaker in speakers]
    if not clips:
        raise UserError(f"{path}: no FSDD recordings of {', '.join(sorted(speakers))}.")
    waveforms, texts, names = data.join_digit_recordings(
        clips, count, config["sample_rate"], config["min_digits"], config["max_digits"], seed=seed)
    return Utterances(waveforms, texts, names)


def usable(utterances, config, quiet=False):
    """Drop utterances too long for the model or too short for their transcript under CTC."""
    max_samples = int(config["max_clip_seconds"] * config["sample_rate"])
    keep = []
    for i, (waveform, text) in enumerate(zip(utterances.waveforms, utterances.texts)):
        labels = encode(text, config["vocabulary"])
        repeats = sum(a == b for a, b in zip(labels, labels[1:]))
        frames = len(waveform) // config["frame_step"] + 1
        if labels and len(waveform) < max_samples and frames >= len(labels) + repeats:
            keep.append(i)
    if len(keep) < len(utterances) and not quiet:
        print(f"Skipped {len(utterances) - len(keep)} of {len(utterances)} clips: empty transcript, longer "
              f"than {config['max_clip_seconds']:g} s, or too short for their transcript.")
    if not keep:
        raise UserError("No usable clip: every clip is too long, too short or has an empty transcript.")
    return Utterances([utterances.waveforms[i] for i in keep], [utterances.texts[i] for i in keep],
                      [utterances.speakers[i] for i in keep])


def make_dataset(utterances, config, training, seed=0):
    """Batches of `({"spectrogram", "frame_mask"}, packed targets)`, and their number.

    Clips are batched with clips of about their length (buckets of 1 s), so
    that little of a batch is padding. The targets pack, per clip, the number
    of real frames and the label ids padded with 0: `[frames, l1, l2, ..., 0,
    0]` (what `ctc_loss` unpacks).
    """
    log_mel = features.LogMel(config["sample_rate"], config["frame_length"], config["frame_step"],
                              config["num_mel_bins"], config["level"])
    pcm = [np.clip(np.round(w * PCM_SCALE), -32768, 32767).astype("int16") for w in utterances.waveforms]
    lengths = np.array([_last_nonzero(w) for w in pcm], "int32")
    waveforms = tf.RaggedTensor.from_row_lengths(np.concatenate(pcm), [len(w) for w in pcm])
    labels = [encode(text, config["vocabulary"]) for text in utterances.texts]
    labels = tf.RaggedTensor.from_row_lengths(np.concatenate(labels).astype("int32"), [len(x) for x in labels])
    dataset = tf.data.Dataset.from_tensor_slices((waveforms, lengths, labels))
    if training:
        dataset = dataset.shuffle(len(utterances), seed=seed, reshuffle_each_iteration=True)

    # Plain TensorFlow, no Python control flow on tensors: autograph would only
    # rewrite the closures, and its rewrite failed on `config[...]` look-ups
    # when other tests had run first (TypeError on config['sample_rate']).
    @tf.autograph.experimental.do_not_convert
    def to_float(waveform, length, label):
        # One trailing zero: the longest clip of a batch then never reaches the
        # batch's last sample, whose frame AudioFeatureEmbedding treats specially.
        return tf.concat([tf.cast(waveform, tf.float32) / PCM_SCALE, [0.0]], axis=0), length, label

    @tf.autograph.experimental.do_not_convert
    def to_features(batch, length, label):
        if training:
            batch, length = features.speed_perturb_clips(batch, length, *config["speed_range"])
            batch = features.add_noise(batch, length, config["noise_probability"], config["noise_snr_db"])
        frames, mask = log_mel.features(batch, length)
        if training:
            frames = features.spec_augment(frames, mask, config["time_masks"], config["time_mask_frames"],
                                           config["frequency_masks"], config["frequency_mask_bins"])
        frame_count = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1, keepdims=True)
        return {"spectrogram": frames, "frame_mask": mask}, tf.concat([frame_count, label], axis=1)

    boundaries = [int(seconds * config["sample_rate"]) for seconds in range(1, int(config["max_clip_seconds"]) + 1)]
    dataset = dataset.map(to_float).bucket_by_sequence_length(
        tf.autograph.experimental.do_not_convert(lambda waveform, length, label: tf.shape(waveform)[0]), boundaries,
        [config["batch_size"]] * (len(boundaries) + 1))
    sizes = np.bincount(np.searchsorted(boundaries, [len(w) + 1 for w in pcm], side="right"))
    batches = int(sum(-(-size // config["batch_size"]) for size in sizes))
    # The count is exact; telling tf.data spares Keras a first epoch of guessing.
    dataset = dataset.map(to_features).apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.prefetch(2), batches


def _last_nonzero(waveform):
    nonzero = np.flatnonzero(waveform)
    return int(nonzero[-1]) + 1 if len(nonzero) else 0


# === Model ===


def build_models(config):
    """The serving model (`audio` -> CTC logits) and the training model (log-mel frames -> logits).

    Both share the encoder blocks and the head; their audio embeddings hold
    the same weights after `features.sync_embedding`.
    """
    audio_embedding, spectrogram_embedding = features.embedding_pair(
        config["hidden_dim"], config["sample_rate"], config["frame_length"], config["frame_step"],
        config["num_mel_bins"], mask_zero=True)
    blocks = [
        TransformerEncoder(config["intermediate_dim"], config["num_heads"], dropout=config["dropout"],
                           normalize_first=True, name=f"encoder_{i}")
        for i in range(config["num_layers"])
    ]
    # Log-mel frames are far from zero: normalizing each frame embedding lets
    # the position encoding and the attention work from the first step.
    embedding_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="embedding_norm")
    final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")
    head = CTCHead(len(config["vocabulary"]) + 1, dropout=config["dropout"], name="head")
    conv = None
    if config.get("conv_kernel"):
        conv = keras.layers.Conv1D(config["hidden_dim"], config["conv_kernel"], padding="same",
                                   activation="gelu", name="conv")
    return _faces(audio_embedding, spectrogram_embedding, embedding_norm, blocks, final_norm, head, config, conv)


def _faces(audio_embedding, spectrogram_embedding, embedding_norm, blocks, final_norm, head, config, conv=None):
    def encode_frames(x, mask):
        x = embedding_norm(x)
        if conv is not None:
            # Padded frames are zeroed first, so that both faces (whose padding
            # differs: zeros vs the log of silence) see the same neighbours.
            x = keras.ops.where(mask[..., None], x, 0.0)
            x = x + conv(x)
        for block in blocks:
            x = block(x, padding_mask=mask)
        return head(final_norm(x))

    # === Functional Model ===
    # A fixed input length: AudioFeatureEmbedding's `mask_zero` needs a known
    # number of samples in a symbolic model. Shorter clips are zero-padded.
    waveform = keras.Input((int(config["max_clip_seconds"] * config["sample_rate"]),), name="audio")
    normalize, level = features.level_layers(config["level"])
    normalized = level(normalize(waveform))
    embedded = audio_embedding(normalized)
    serving = keras.Model(waveform, encode_frames(embedded, audio_embedding.compute_mask(normalized)),
                          name="speech_to_text")
    frames = keras.Input((None, config["num_mel_bins"]), name="spectrogram")
    frame_mask = keras.Input((None,), dtype="bool", name="frame_mask")
    training = keras.Model({"spectrogram": frames, "frame_mask": frame_mask},
                           encode_frames(spectrogram_embedding(frames), frame_mask),
                           name="speech_to_text_training")
    return serving, training


def training_model_of(serving, config):
    """The training face of a saved serving model (for finetune)."""
    embedding = features.spectrogram_embedding_like(serving.get_layer("audio_embedding"))
    blocks = [layer for layer in serving.layers if layer.name.startswith("encoder_")]
    conv = serving.get_layer("conv") if any(layer.name == "conv" for layer in serving.layers) else None
    _, training = _faces(serving.get_layer("audio_embedding"), embedding, serving.get_layer("embedding_norm"),
                         blocks, serving.get_layer("final_norm"), serving.get_layer("head"), config, conv)
    return training


def ctc_loss(packed, logits):
    """CTC loss of packed targets `[frames, labels..., 0...]` (see `make_dataset`)."""
    packed = keras.ops.cast(packed, "int32")
    frame_lengths, labels = packed[:, 0], packed[:, 1:]
    label_lengths = keras.ops.sum(keras.ops.cast(labels > 0, "int32"), axis=1)
    return keras.ops.ctc_loss(labels, keras.ops.cast(logits, "float32"), label_lengths, frame_lengths)


def compile_model(model, steps, config, finetuning=None):
    schedule = common_training.warmup_cosine(config["learning_rate"], steps, int(steps * config["warmup_fraction"]))
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"], clipnorm=1.0)
    model.compile(optimizer=finetuning.optimizer(optimizer) if finetuning else optimizer, loss=ctc_loss)


# === Training ===


def train(serving, training, train_set, run, config, epochs, seed=0, validation=None, quiet=False,
          finetuning=None):
    """Fit the training face, then copy its embedding into the serving face.

    `finetuning`: a `FineTuning` (`finetune --method`), or None (every weight trains).
    """
    dataset, batches = make_dataset(train_set, config, training=True, seed=seed)
    if finetuning:
        finetuning.prepare(training, head=("head",))
    compile_model(training, epochs * batches, config, finetuning)
    validation_data = None if validation is None else make_dataset(validation, config, training=False)[0]
    start = time.perf_counter()
    history = common_training.fit(training, dataset, run, epochs, validation_data=validation_data, quiet=quiet,
                                  callbacks=finetuning.callbacks if finetuning else ())
    features.sync_embedding(training, serving)
    if history:
        history[-1]["train_seconds"] = time.perf_counter() - start
    return history


# === Evaluation ===


def edit_distance(reference, hypothesis):
    """Levenshtein distance between two sequences (strings or lists of words).

    Example:
    >>> edit_distance("three", "tree"), edit_distance("one two".split(), "one".split())
    (1, 1)
    """
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def error_rates(references, hypotheses):
    """`(cer, wer)`: total edit distance over total reference length, in characters and words.

    Both sides are compared with their whitespace normalized the same way (runs
    collapsed to one space, ends stripped), so that a decoded hypothesis with a
    doubled, leading or trailing space is not charged for it.

    Example:
    >>> error_rates(["three one four"], ["three one for"])
    (0.07142857142857142, 0.3333333333333333)
    """
    references = [" ".join(r.split()) for r in references]
    hypotheses = [" ".join(h.split()) for h in hypotheses]
    characters = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    words = sum(edit_distance(r.split(), h.split()) for r, h in zip(references, hypotheses))
    return (characters / max(sum(len(r) for r in references), 1),
            words / max(sum(len(r.split()) for r in references), 1))


def pad_clips(waveforms, config):
    """Zero-pad clips to the serving length: `(B, samples)` and the real frame counts."""
    length = int(config["max_clip_seconds"] * config["sample_rate"])
    batch = np.zeros((len(waveforms), length), "float32")
    for i, waveform in enumerate(waveforms):
        if len(waveform) > length:
            raise UserError(f"A clip of {len(waveform) / config['sample_rate']:.1f} s is longer than the "
                            f"model's {config['max_clip_seconds']:g} s; cut it with `split_long`.")
        batch[i, : len(waveform)] = waveform
    # The frame rule of AudioFeatureEmbedding(mask_zero=True): frame t is real
    # if its centre min(t * step, samples - 1) is before the last nonzero sample.
    centres = np.minimum(np.arange(length // config["frame_step"] + 1) * config["frame_step"], length - 1)
    lengths = np.array([_last_nonzero(w) for w in waveforms])
    frames = (centres[None, :] < lengths[:, None]).sum(axis=1).astype("int32")
    return batch, frames


def transcribe(model, waveforms, config, strategy="greedy", beam_width=BEAM_WIDTH, batch_size=16):
    """Transcripts of waveforms (each at most `max_clip_seconds`)."""
    texts = []
    for start in range(0, len(waveforms), batch_size):
        batch, frames = pad_clips(waveforms[start : start + batch_size], config)
        logits = np.asarray(common_training.predict_evenly(model, batch, batch_size), "float32")
        frames = np.maximum(frames, 1)
        decoded, _ = keras.ops.ctc_decode(logits, frames, strategy=strategy, beam_width=beam_width,
                                          mask_index=0)
        for ids in np.asarray(keras.ops.convert_to_numpy(decoded))[0]:
            texts.append(decode_ids(ids, config["vocabulary"]))
    return texts


def evaluate(model, utterances, config, strategies=("greedy", "beam_search"), batch_size=16):
    """CER and WER of each decoding strategy, and a few examples."""
    references = [normalize_text(t, config["vocabulary"]) for t in utterances.texts]
    results = {"examples": len(references)}
    for strategy in strategies:
        hypotheses = transcribe(model, utterances.waveforms, config, strategy, config["beam_width"], batch_size)
        name = "greedy" if strategy == "greedy" else "beam"
        results[f"cer_{name}"], results[f"wer_{name}"] = error_rates(references, hypotheses)
        results[f"samples_{name}"] = [{"reference": r, "hypothesis": h}
                                      for r, h in list(zip(references, hypotheses))[:5]]
    return results


def split_long(waveform, config, max_seconds=None, search_seconds=1.5):
    """Cut a long waveform into pieces of at most `max_clip_seconds`, at quiet points.

    Each cut falls at the quietest 50 ms in the last `search_seconds` before
    the limit, so that words are rarely split.
    """
    rate = config["sample_rate"]
    limit = int((max_seconds or config["max_clip_seconds"]) * rate)
    window, search = int(0.05 * rate), int(search_seconds * rate)
    pieces, start = [], 0
    while len(waveform) - start > limit:
        region = waveform[start + limit - search : start + limit].astype("float64") ** 2
        energy = np.convolve(region, np.ones(window), mode="valid")
        cut = start + limit - search + int(np.argmin(energy)) + window // 2
        pieces.append(waveform[start:cut])
        start = cut
    pieces.append(waveform[start:])
    return pieces


def transcribe_file(model, path, config, strategy="greedy", max_seconds=3600.0):
    """The transcript of a WAV file of any length (long files are cut at quiet points)."""
    waveform, _ = audio.read_wav(path, config["sample_rate"], max_seconds=max_seconds)
    pieces = [p for p in split_long(waveform, config) if _last_nonzero(p) > 0]
    texts = transcribe(model, pieces, config, strategy, config["beam_width"]) if pieces else []
    return " ".join(t for t in texts if t)


def attention_maps(model, waveform, config):
    """The last encoder block's self-attention on one clip, `(frames, frames)`, mean over heads."""
    batch, frames = pad_clips([waveform], config)
    x = features.apply_level(model, batch)
    embedding = model.get_layer("audio_embedding")
    mask = embedding.compute_mask(x)
    x = model.get_layer("embedding_norm")(embedding(x))
    if any(layer.name == "conv" for layer in model.layers):
        x = keras.ops.where(mask[..., None], x, 0.0)
        x = x + model.get_layer("conv")(x)
    for layer in model.layers:
        if layer.name.startswith("encoder_"):
            x, scores = layer(x, padding_mask=mask, return_attention_scores=True)
    scores = keras.ops.convert_to_numpy(scores).mean(axis=1)[0]  # [frames, frames]
    return scores[: frames[0], : frames[0]]


def plot_attention(model, waveform, path, title, config):
    """A PNG: the log-mel spectrogram, the per-frame best label, the last block's self-attention."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_mel = features.LogMel(config["sample_rate"], config["frame_length"], config["frame_step"],
                              config["num_mel_bins"], config["level"])
    frames, _ = log_mel.features(waveform[None], [len(waveform)])
    frames = frames.numpy()[0]
    scores = attention_maps(model, waveform, config)
    count = len(scores)
    frames = frames[:count]
    seconds = count * config["frame_step"] / config["sample_rate"]
    batch, _ = pad_clips([waveform], config)
    best = np.asarray(model.predict(batch, verbose=0))[0, :count].argmax(axis=-1)
    figure, axes = plt.subplots(2, 1, figsize=(8, 7.5), height_ratios=(1, 2.4))
    axes[0].imshow(frames.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, frames.shape[1]))
    for t, label in enumerate(best):
        if label > 0 and (t == 0 or best[t - 1] != label):
            axes[0].text((t + 0.5) * config["frame_step"] / config["sample_rate"], frames.shape[1] * 0.9,
                         config["vocabulary"][label - 1].replace(" ", "_"), color="white", fontsize=8, ha="center")
    axes[0].set(title=title, ylabel="mel band")
    axes[1].imshow(scores, origin="lower", aspect="auto", cmap="viridis", extent=(0, seconds, 0, seconds))
    axes[1].set(xlabel="key frame (s)", ylabel="query frame (s)", title="last block self-attention (mean of heads)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
