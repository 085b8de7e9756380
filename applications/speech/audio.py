"""WAV files in, mono float32 waveforms at one sample rate out.

Reads PCM WAV files of any sample rate, sample width (8, 16, 24, 32 bit) and
channel count with the standard library's `wave` module and NumPy: channels are
mixed down by averaging, the rate is changed with a polyphase filter
(`scipy.signal.resample_poly`). Every way a file can be unusable (missing,
empty, not a WAV file, cut short, silent of samples, too long) raises a
`UserError` that names the file and says what to do.
"""

import io
import math
import struct
import wave
from pathlib import Path

import numpy as np
from scipy import signal

from applications.common.errors import UserError

# Longest file read by default, in seconds: a guard against reading an hour of
# audio by mistake (10 minutes at 44.1 kHz stereo is already 100 MB of samples).
MAX_SECONDS = 60.0


def read_wav(path, sample_rate=None, max_seconds=MAX_SECONDS):
    """Read a PCM WAV file as a mono float32 waveform in [-1, 1].

    Args:
        path: str or Path. The WAV file.
        sample_rate: int or None. Resample to this rate; `None` keeps the
            file's rate.
        max_seconds: float or None. Refuse files longer than this (checked from
            the header, before reading the samples); `None` reads any length.

    Returns:
        `(waveform, sample_rate)`: a float32 array of shape `(samples,)` and
        its rate in Hz.

    Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mktemp(suffix=".wav")
    >>> stereo = np.zeros((441, 2), "float32")
    >>> write_wav(path, stereo, 44100)
    >>> waveform, rate = read_wav(path, sample_rate=16000)
    >>> waveform.shape, rate
    ((160,), 16000)
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such WAV file.")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty (0 bytes); expected a PCM WAV file.")
    try:
        with _open_wav(path) as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.getnframes()
            if rate <= 0 or channels <= 0 or width not in (1, 2, 3, 4):
                raise UserError(
                    f"{path}: unsupported WAV header ({channels} channels, {8 * width}-bit, "
                    f"{rate} Hz); expected PCM with 8, 16, 24 or 32-bit samples."
                )
            seconds = frames / rate
            if max_seconds is not None and seconds > max_seconds:
                raise UserError(
                    f"{path}: {seconds:.1f} s of audio, longer than the {max_seconds:g} s this "
                    "command reads; cut the file into shorter clips (or raise the limit)."
                )
            data = reader.readframes(frames)
    except (wave.Error, EOFError, RuntimeError, struct.error) as error:  # What `wave` raises on bad bytes.
        hint = " (a float WAV: convert it to 16-bit PCM)" if "format: 3" in str(error) else ""
        reason = f": {error}" if str(error) else ""
        raise UserError(f"{path}: not a readable PCM WAV file{hint}{reason}.") from None
    usable = len(data) // (width * channels) * (width * channels)
    if usable == 0:
        raise UserError(f"{path}: the WAV file holds no audio samples.")
    waveform = _decode(data[:usable], width).reshape(-1, channels).mean(axis=1)
    if sample_rate is not None and sample_rate != rate:
        waveform = resample(waveform, rate, sample_rate)
        rate = sample_rate
    return waveform.astype("float32"), rate


def _open_wav(path):
    """A `wave` reader of `path`, taking WAVE_FORMAT_EXTENSIBLE PCM as plain PCM.

    ffmpeg and SoX write 24- and 32-bit PCM with the extensible header (format
    tag 0xFFFE, the PCM subformat in a GUID), which `wave` refuses before
    Python 3.12. Such a file is read with the tag set to plain PCM (1): the
    samples are the same.
    """
    with open(path, "rb") as file:
        head = file.read(4096)
        at = head.find(b"fmt ")  # Tag at +8; the subformat GUID's first two bytes at +32.
        if at < 0 or head[at + 8 : at + 10] != b"\xfe\xff" or head[at + 32 : at + 34] != b"\x01\x00":
            return wave.open(str(path), "rb")
        data = bytearray(head + file.read())
    data[at + 8 : at + 10] = b"\x01\x00"
    return wave.open(io.BytesIO(bytes(data)), "rb")


def _decode(data, width):
    """PCM bytes -> float samples in [-1, 1] (8-bit WAV is unsigned, the rest signed)."""
    if width == 1:
        return (np.frombuffer(data, "uint8").astype("float32") - 128.0) / 128.0
    if width == 3:
        # Little-endian 24-bit: put the 3 bytes in the top of an int32.
        raw = np.frombuffer(data, "uint8").reshape(-1, 3)
        padded = np.zeros((len(raw), 4), "uint8")
        padded[:, 1:] = raw
        return padded.view("<i4")[:, 0].astype("float32") / 2.0**31
    dtype = {2: "<i2", 4: "<i4"}[width]
    return np.frombuffer(data, dtype).astype("float32") / float(2 ** (8 * width - 1))


def resample(waveform, rate, target_rate):
    """Change the sample rate with a polyphase low-pass filter."""
    if rate == target_rate:
        return np.asarray(waveform, "float32")
    common = math.gcd(int(rate), int(target_rate))
    out = signal.resample_poly(waveform, int(target_rate) // common, int(rate) // common)
    return out.astype("float32")


def write_wav(path, waveform, sample_rate):
    """Write a float waveform (`(samples,)` or `(samples, channels)`) as 16-bit PCM."""
    waveform = np.asarray(waveform, "float32")
    if waveform.ndim == 1:
        waveform = waveform[:, None]
    pcm = np.clip(np.round(waveform * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(waveform.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(int(sample_rate))
        writer.writeframes(pcm.tobytes())


def fit_length(waveform, length):
    """Crop or zero-pad a waveform to `length` samples.

    A longer waveform keeps its loudest `length`-sample window (a spoken word
    in a longer recording); a shorter one is padded equally on both sides.
    """
    if len(waveform) >= length:
        if len(waveform) == length:
            return waveform
        energy = np.cumsum(np.concatenate([[0.0], waveform.astype("float64") ** 2]))
        window = energy[length:] - energy[:-length]
        start = int(np.argmax(window))
        return waveform[start : start + length]
    before = (length - len(waveform)) // 2
    return np.pad(waveform, (before, length - len(waveform) - before))


def wav_files(paths):
    """The `.wav` files of `paths`: files as given, folders searched recursively (sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.rglob("*.wav"))
            if not found:
                raise UserError(f"{path}: a folder with no .wav files.")
            files += found
        else:
            files.append(path)
    return files
