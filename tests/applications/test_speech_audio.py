"""Reading WAV files: formats, resampling, mix-down, and every bad input."""

import struct
import wave

import numpy as np
import pytest

from applications.common.errors import UserError
from applications.speech import audio


def _write_pcm(path, samples, rate, width):
    """Write integer samples `(frames, channels)` with the standard library."""
    samples = np.asarray(samples)
    dtype = {1: "u1", 2: "<i2", 4: "<i4"}.get(width)
    if width == 3:
        raw = samples.astype("<i4").view("u1").reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = samples.astype(dtype).tobytes()
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(samples.shape[1])
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(raw)


@pytest.mark.parametrize(
    "width, samples, expected",
    [
        (1, [[0], [128], [255]], [-1.0, 0.0, 127 / 128]),  # 8-bit WAV is unsigned.
        (2, [[-32768], [0], [16384]], [-1.0, 0.0, 0.5]),
        (3, [[-(2**23)], [0], [2**22]], [-1.0, 0.0, 0.5]),
        (4, [[-(2**31)], [0], [2**30]], [-1.0, 0.0, 0.5]),
    ],
)
def test_sample_widths_decode_to_known_values(tmp_path, width, samples, expected):
    path = tmp_path / "clip.wav"
    _write_pcm(path, samples, 8000, width)
    waveform, rate = audio.read_wav(path)
    assert rate == 8000
    np.testing.assert_allclose(waveform, expected, atol=1e-6)


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    rate, seconds = 44100, 0.5
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)  # Left channel only.
    path = tmp_path / "stereo.wav"
    audio.write_wav(path, stereo, rate)
    waveform, new_rate = audio.read_wav(path, sample_rate=8000)
    assert new_rate == 8000 and waveform.shape == (4000,) and waveform.dtype == np.float32
    # The mix-down halves the tone; resampling keeps a 440 Hz tone at 440 Hz.
    middle = waveform[500:-500]
    assert abs(np.sqrt(np.mean(middle**2)) - 0.25 / np.sqrt(2)) < 0.01
    spectrum = np.abs(np.fft.rfft(middle))
    assert abs(np.argmax(spectrum) * 8000 / len(middle) - 440) < 5


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    with pytest.raises(UserError, match="corrupt.wav: not a readable PCM WAV file"):
        audio.read_wav(path)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype="uint8").tobytes())
    with pytest.raises(UserError, match="not a readable PCM WAV file"):
        audio.read_wav(path)


def test_empty_file_and_no_samples_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty.wav: the file is empty"):
        audio.read_wav(empty)
    silent = tmp_path / "header_only.wav"
    _write_pcm(silent, np.zeros((0, 1)), 8000, 2)
    with pytest.raises(UserError, match="holds no audio samples"):
        audio.read_wav(silent)
    with pytest.raises(UserError, match="no such WAV file"):
        audio.read_wav(tmp_path / "missing.wav")


def test_float_wav_says_to_convert(tmp_path):
    data = np.zeros(10, "<f4").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 3, 1, 8000, 32000, 4, 32) + b"data" + struct.pack("<I", len(data))
    path = tmp_path / "float.wav"
    path.write_bytes(header + data)
    with pytest.raises(UserError, match="float WAV: convert it to 16-bit PCM"):
        audio.read_wav(path)


def test_extensible_24_bit_pcm_reads_as_plain_pcm(tmp_path):
    # The header ffmpeg and SoX write for 24-bit PCM: format tag 0xFFFE, PCM subformat GUID.
    samples = np.array([0, 2**22, -(2**22), 2**23 - 1], "<i4")
    data = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in samples)
    guid = struct.pack("<IHH", 1, 0, 0x10) + bytes([0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71])
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 8000, 24000, 3, 24, 22, 24, 4) + guid
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "extensible.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    waveform, rate = audio.read_wav(path)
    assert rate == 8000
    np.testing.assert_allclose(waveform, samples / 2.0**23, atol=1e-6)


def test_truncated_file_keeps_the_samples_present(tmp_path):
    path = tmp_path / "cut.wav"
    _write_pcm(path, np.full((100, 1), 1000), 8000, 2)
    path.write_bytes(path.read_bytes()[:-51])  # 25.5 samples short.
    waveform, _ = audio.read_wav(path)
    assert len(waveform) == 74


def test_ten_minute_file_is_refused_from_the_header_or_read_on_request(tmp_path):
    path = tmp_path / "long.wav"
    _write_pcm(path, np.zeros((8000 * 600, 1), "int16"), 8000, 2)
    with pytest.raises(UserError, match=r"600\.0 s of audio, longer than the 60 s"):
        audio.read_wav(path)
    waveform, _ = audio.read_wav(path, max_seconds=None)
    assert len(waveform) == 8000 * 600


def test_fit_length_keeps_the_loudest_window_or_pads_both_sides():
    waveform = np.zeros(100, "float32")
    waveform[70:80] = 1.0
    cropped = audio.fit_length(waveform, 20)
    assert len(cropped) == 20 and cropped.sum() == 10.0
    padded = audio.fit_length(np.ones(10, "float32"), 16)
    np.testing.assert_array_equal(padded, [0, 0, 0] + [1] * 10 + [0, 0, 0])
