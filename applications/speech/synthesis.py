"""A speech corpus from a text file, spoken by the espeak-ng synthesizer.

`synthesize_corpus` speaks every line of a text with several voices, speeds and
pitches and writes a corpus folder: `clips/NNNNNN.wav` and `transcripts.tsv`
(`file<TAB>text<TAB>voice`), the layout the speech-to-text application reads;
or, with `class_folders=True`, one folder per distinct line
(`<line>/NNNNNN.wav`), the layout keyword spotting reads (words spoken by many
voices: data to pretrain a keyword spotter on).
espeak-ng is a Debian package (`apt-get install espeak-ng`); one call takes
about 15 ms on a CPU core, so 3,000 clips take under a minute.

Voices are espeak-ng names `language+variant`: 8 English accents times 23
variants (male, female, klatt, ...) give 184 voices. `TRAIN_VOICES` and
`HELD_OUT_VOICES` are disjoint (no accent+variant pair in common, and the
held-out variants are never used in training), so a test on the held-out
voices measures speakers the model has not heard.
"""

import concurrent.futures
import itertools
import shutil
import subprocess
from pathlib import Path

import numpy as np

from applications.common.errors import UserError
from applications.speech.data import DIGIT_WORDS, TRANSCRIPT_FILE

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "klatt", "klatt2", "klatt3",
                  "Alex", "Andy", "Annie", "david", "ed", "john", "max", "paul", "robert", "steph")
HELD_OUT_VARIANTS = ("m7", "f4", "f5", "klatt4", "Mike", "linda", "quincy", "travis")
TRAIN_VOICES = tuple(f"{a}+{v}" for a, v in itertools.product(ACCENTS, TRAIN_VARIANTS))
HELD_OUT_VOICES = tuple(f"{a}+{v}" for a, v in itertools.product(ACCENTS, HELD_OUT_VARIANTS))
SPEEDS = (110, 130, 150, 170, 190)  # Words per minute (espeak-ng's default is 175).
PITCHES = (25, 40, 50, 60, 75)  # 0-99 (espeak-ng's default is 50).


def espeak_binary():
    """The espeak-ng executable, or a `UserError` saying how to install it."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise UserError("espeak-ng is not installed: install it (`apt-get install espeak-ng`) and try again.")
    return binary


def digit_sequences(count, min_digits=3, max_digits=7, seed=0):
    """Lines of spoken digits ("three one four one five"), `count` of them.

    Example:
    >>> digit_sequences(2, min_digits=3, max_digits=3, seed=1)
    ['four five seven', 'nine zero one']
    """
    if not 1 <= min_digits <= max_digits:
        raise UserError(f"Digit counts must satisfy 1 <= min <= max; received {min_digits}, {max_digits}.")
    rng = np.random.default_rng(seed)
    return [
        " ".join(DIGIT_WORDS[d] for d in rng.integers(10, size=rng.integers(min_digits, max_digits + 1)))
        for _ in range(count)
    ]


def speak(text, path, voice="en-us", speed=175, pitch=50, binary=None):
    """Speak `text` into the WAV file `path` (espeak-ng writes 22,050 Hz mono)."""
    binary = binary or espeak_binary()
    result = subprocess.run(
        [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), "--stdin"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
    )
    if result.returncode != 0 or not Path(path).exists() or Path(path).stat().st_size <= 44:
        message = result.stderr.decode("utf-8", "replace").strip() or "no audio written"
        raise UserError(f"espeak-ng failed for voice {voice!r} on {text[:40]!r}: {message}.")


def synthesize_corpus(lines, output, voices=TRAIN_VOICES, speeds=SPEEDS, pitches=PITCHES,
                      copies=1, seed=0, workers=2, class_folders=False):
    """Speak each line `copies` times, each time with a random voice, speed and pitch.

    Args:
        lines: list of str. The texts; empty lines are skipped.
        output: str or Path. The corpus folder to write (must not exist, or be empty).
        voices, speeds, pitches: what to draw from.
        copies: int. Clips per line.
        seed: int. Draws are repeatable.
        workers: int. espeak-ng processes at a time.
        class_folders: bool. Write `<line>/NNNNNN.wav` (the line is the
            class name, so it must be usable as a folder name) instead of
            `clips/NNNNNN.wav`; `transcripts.tsv` lists the clips either way.

    Returns:
        The `Path` of the written `transcripts.tsv`.
    """
    binary = espeak_binary()
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        raise UserError("The text to synthesize has no non-empty lines.")
    if "\t" in "".join(lines):
        raise UserError("The text to synthesize holds TAB characters; transcripts are TAB-separated.")
    if class_folders:
        bad = sorted({line for line in lines if "/" in line or "\\" in line or line.startswith(".")})
        if bad:
            raise UserError(f"Lines {bad[:3]} cannot be class folder names (no '/', '\\' or leading '.').")
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output} exists and is not empty; choose a new folder.")
    rng = np.random.default_rng(seed)
    jobs = []
    for line in lines:
        for _ in range(copies):
            number = len(jobs)
            voice = voices[rng.integers(len(voices))]
            speed, pitch = int(rng.choice(speeds)), int(rng.choice(pitches))
            folder = line if class_folders else "clips"
            jobs.append((f"{folder}/{number:06d}.wav", line, voice, speed, pitch))
    for folder in sorted({Path(name).parent for name, *_ in jobs}):
        (output / folder).mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda job: speak(job[1], output / job[0], job[2], job[3], job[4], binary), jobs))
    transcript = output / TRANSCRIPT_FILE
    transcript.write_text("".join(f"{name}\t{text}\t{voice}\n" for name, text, voice, _, _ in jobs), encoding="utf-8")
    return transcript
