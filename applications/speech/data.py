"""Speech data: labelled clips for keyword spotting, transcribed clips for speech to text.

Keyword spotting reads
- the Free Spoken Digit Dataset as published: `recordings/{digit}_{speaker}_{index}.wav`
  (8 kHz mono; the label and the speaker come from the file name; the official
  split puts recordings 0-4 of each speaker in the test set);
- a folder of class folders of WAV files (`<label>/<anything>.wav`), at any
  sample rate and channel count: the Speech Commands sample has this layout.

Speech to text reads a folder of WAV files with a transcript file
`transcripts.tsv`: `file<TAB>text` a line, an optional third column naming the
speaker (or voice), the layout `keras-attention synthesize` writes.

Everything is read into NumPy arrays at the model's sample rate: the data sets
are small (FSDD is 2,500 clips of at most 1.3 s) and fit in memory.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from applications.common.data import KnownDataSet, decode_lines
from applications.common.errors import UserError
from applications.speech import audio

FSDD = KnownDataSet(
    name="fsdd",
    folder="speech/fsdd",
    description="Free Spoken Digit Dataset: 10 spoken digits, 8 kHz (Jakobovski et al.)",
)
SPEECH_COMMANDS_SAMPLE = KnownDataSet(
    name="speech-commands-sample",
    folder="speech/speech_commands_sample",
    description="300 clips of Speech Commands v0.01, 30 words (Warden 2018)",
)
KNOWN_KEYWORD_DATA = (FSDD, SPEECH_COMMANDS_SAMPLE)
# Not downloaded but synthesized on first use (speech_to_text.default_corpus).
ESPEAK_DIGITS = KnownDataSet(
    name="espeak-digits",
    folder="speech/espeak_digits",
    description="spoken digit sequences synthesized with espeak-ng (made on first use)",
)
TRANSCRIPT_FILE = "transcripts.tsv"
# Official FSDD split: recordings 0-4 of every speaker are the test set.
FSDD_TEST_INDICES = range(0, 5)
# The random split of data without an official one: fixed, never the training --seed, so that
# evaluate and finetune see the test clips the run was tested on.
SPLIT_SEED = 0
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclasses.dataclass(frozen=True)
class Clip:
    """One WAV file and what is known about it."""

    path: Path
    label: str  # A class name (keyword spotting) or a transcript (speech to text).
    speaker: str = ""
    index: int = -1  # The FSDD recording number, -1 elsewhere.


# === Keyword spotting ===


def is_fsdd(folder):
    """Whether `folder` is FSDD as published (or its `recordings` folder)."""
    folder = Path(folder)
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    return recordings.is_dir() and any(FSDD_NAME.match(p.name) for p in recordings.glob("*.wav"))


def fsdd_clips(folder):
    """The clips of FSDD, labels and speakers parsed from the file names."""
    folder = Path(folder)
    recordings = folder / "recordings" if (folder / "recordings").is_dir() else folder
    clips = []
    for path in sorted(recordings.glob("*.wav")):
        match = FSDD_NAME.match(path.name)
        if match:
            digit, speaker, index = match.groups()
            clips.append(Clip(path, digit, speaker, int(index)))
    if not clips:
        raise UserError(
            f"{folder}: no FSDD recordings named {{digit}}_{{speaker}}_{{index}}.wav. Put the "
            "published free-spoken-digit-dataset `recordings` folder there."
        )
    return clips


def class_folder_clips(folder):
    """The clips of a folder of class folders (`<label>/*.wav`)."""
    folder = Path(folder)
    clips = []
    for class_folder in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_folder.rglob("*.wav")):
            clips.append(Clip(path, class_folder.name))
    labels = {clip.label for clip in clips}
    if len(labels) < 2:
        raise UserError(
            f"{folder}: found {len(clips)} WAV files in {len(labels)} class folders; expected a "
            "folder of at least two class folders of .wav files (`yes/001.wav`, `no/002.wav`), "
            "or the FSDD recordings."
        )
    return clips


def keyword_clips(folder):
    """The labelled clips of a keyword data folder, whatever its layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--data {folder}: expected a folder of class folders of WAV files, or FSDD.")
    return fsdd_clips(folder) if is_fsdd(folder) else class_folder_clips(folder)


def split_clips(clips, split, holdout_speaker=None, validation_fraction=0.1):
    """Select the clips of one split.

    FSDD follows its official split (recordings 0-4 of each speaker are the
    test set), or, with `holdout_speaker`, all of that speaker's recordings
    are the test set and the other speakers the training set. Other data are
    split at random (`SPLIT_SEED`), `validation_fraction` of each class to the test set.
    `"train"` and `"test"` are complements; `"all"` is everything.
    """
    if split == "all":
        return list(clips)
    if split not in ("train", "test"):
        raise UserError(f"Unknown split {split!r}. Expected one of train, test, all.")
    fsdd = all(clip.index >= 0 for clip in clips)
    if holdout_speaker is not None:
        speakers = sorted({clip.speaker for clip in clips if clip.speaker})
        if holdout_speaker not in speakers:
            raise UserError(
                f"--holdout-speaker {holdout_speaker!r} is not in the data; its speakers are: "
                f"{', '.join(speakers) or 'none (speakers are known for FSDD only)'}."
            )
        is_test = [clip.speaker == holdout_speaker for clip in clips]
    elif fsdd:
        is_test = [clip.index in FSDD_TEST_INDICES for clip in clips]
    else:
        rng = np.random.default_rng(SPLIT_SEED)
        is_test = [False] * len(clips)
        for label in sorted({clip.label for clip in clips}):
            members = [i for i, clip in enumerate(clips) if clip.label == label]
            rng.shuffle(members)
            for i in members[: max(1, int(round(len(members) * validation_fraction)))]:
                is_test[i] = True
    want_test = split == "test"
    return [clip for clip, test in zip(clips, is_test) if test == want_test]


def load_clips(clips, sample_rate, clip_samples, max_seconds=audio.MAX_SECONDS):
    """Read clips as a `(N, clip_samples)` float32 array at `sample_rate`."""
    waveforms = np.zeros((len(clips), clip_samples), "float32")
    for i, clip in enumerate(clips):
        waveform, _ = audio.read_wav(clip.path, sample_rate, max_seconds=max_seconds)
        waveforms[i] = audio.fit_length(waveform, clip_samples)
    return waveforms


# === Speech to text ===


def transcribed_clips(path):
    """The clips of a transcript file (or the folder holding `transcripts.tsv`)."""
    path = Path(path)
    transcript = path / TRANSCRIPT_FILE if path.is_dir() else path
    if not transcript.is_file():
        raise UserError(
            f"--data {path}: no {TRANSCRIPT_FILE}. Expected a folder of WAV files with a "
            f"{TRANSCRIPT_FILE} of `file<TAB>text` lines (as `keras-attention synthesize` writes)."
        )
    clips = []
    for number, line in enumerate(decode_lines(transcript.read_bytes(), transcript), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[1].strip():
            raise UserError(f"{transcript}:{number}: expected `file<TAB>text[<TAB>speaker]`, got {line!r}.")
        speaker = fields[2].strip() if len(fields) > 2 else ""
        clips.append(Clip(transcript.parent / fields[0].strip(), fields[1].strip(), speaker))
    if not clips:
        raise UserError(f"{transcript}: no transcribed clips in the file.")
    return clips


def load_waveforms(clips, sample_rate, max_seconds=audio.MAX_SECONDS):
    """Read clips as a list of float32 waveforms of their own lengths."""
    return [audio.read_wav(clip.path, sample_rate, max_seconds=max_seconds)[0] for clip in clips]


def join_digit_recordings(clips, count, sample_rate, min_digits=3, max_digits=7, seed=0, pause_seconds=(0.05, 0.25)):
    """Spoken digit sequences made by joining single-digit recordings.

    Each sequence joins `min_digits` to `max_digits` recordings of one speaker
    (drawn from `clips`, FSDD clips), with a short pause of random length
    between them, and is transcribed with the digit words ("three one four").

    Returns:
        `(waveforms, transcripts, speakers)`: lists of equal length `count`.
    """
    rng = np.random.default_rng(seed)
    by_speaker = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    speakers = sorted(by_speaker)
    cache = {}
    waveforms, transcripts, names = [], [], []
    for _ in range(count):
        speaker = speakers[rng.integers(len(speakers))]
        pool = by_speaker[speaker]
        chosen = [pool[i] for i in rng.integers(len(pool), size=rng.integers(min_digits, max_digits + 1))]
        pieces = []
        for clip in chosen:
            if clip.path not in cache:
                cache[clip.path] = audio.read_wav(clip.path, sample_rate)[0]
            pause = int(rng.uniform(*pause_seconds) * sample_rate)
            pieces += [cache[clip.path], np.zeros(pause, "float32")]
        waveforms.append(np.concatenate([np.zeros(int(0.1 * sample_rate), "float32"), *pieces]))
        transcripts.append(" ".join(DIGIT_WORDS[int(clip.label)] for clip in chosen))
        names.append(speaker)
    return waveforms, transcripts, names
