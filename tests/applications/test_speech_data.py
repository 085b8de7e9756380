"""Speech data: FSDD as published, class folders, transcripts, espeak-ng corpora."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from applications.common.errors import UserError
from applications.speech import audio, data, synthesis, synthesize_command

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@pytest.fixture
def fsdd(data_dir):
    return data_dir / "speech" / "fsdd"


def test_fsdd_labels_speakers_and_official_split(fsdd):
    clips = data.keyword_clips(fsdd)
    assert len(clips) == 2500
    first = clips[0]
    assert first.path.name == f"{first.label}_{first.speaker}_{first.index}.wav"
    test = data.split_clips(clips, "test")
    train = data.split_clips(clips, "train")
    assert len(test) == 250 and len(train) == 2250  # Recordings 0-4 of 5 speakers x 10 digits.
    assert {clip.index for clip in test} == set(range(5))
    assert {clip.label for clip in test} == {str(d) for d in range(10)}


def test_fsdd_holdout_speaker(fsdd):
    clips = data.keyword_clips(fsdd)
    test = data.split_clips(clips, "test", holdout_speaker="george")
    train = data.split_clips(clips, "train", holdout_speaker="george")
    assert {clip.speaker for clip in test} == {"george"} and len(test) == 500
    assert "george" not in {clip.speaker for clip in train} and len(train) == 2000
    with pytest.raises(UserError, match="'theo' is not in the data; its speakers are: george, jackson"):
        data.split_clips(clips, "test", holdout_speaker="theo")


def test_speech_commands_sample_as_class_folders_at_16k_read_at_8k(data_dir):
    folder = data_dir / "speech" / "speech_commands_sample"
    clips = data.keyword_clips(folder)
    assert len(clips) == 300 and len({clip.label for clip in clips}) == 30
    test = data.split_clips(clips, "test", validation_fraction=0.1)
    assert len(test) == 30 and len({clip.label for clip in test}) == 30
    waveforms = data.load_clips(clips[:3], 8000, 8000)
    assert waveforms.shape == (3, 8000) and np.abs(waveforms).max() > 0.01


def test_class_folders_of_any_rate_and_channels(tmp_path):
    for label, rate, channels in (("yes", 44100, 2), ("no", 16000, 1)):
        (tmp_path / label).mkdir()
        tone = np.sin(np.arange(rate // 2) / 5.0)[:, None].repeat(channels, axis=1) * 0.3
        audio.write_wav(tmp_path / label / "a.wav", tone, rate)
    clips = data.keyword_clips(tmp_path)
    assert sorted(clip.label for clip in clips) == ["no", "yes"]
    assert data.load_clips(clips, 8000, 8000).shape == (2, 8000)


def test_a_folder_with_one_class_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    audio.write_wav(tmp_path / "only" / "a.wav", np.zeros(100), 8000)
    with pytest.raises(UserError, match="in 1 class folders; expected a folder of at least two"):
        data.keyword_clips(tmp_path)


def test_transcripts_file(tmp_path):
    audio.write_wav(tmp_path / "a.wav", np.zeros(800), 8000)
    (tmp_path / "transcripts.tsv").write_text("a.wav\tthree one\tvoice1\n\n# a comment\n")
    clips = data.transcribed_clips(tmp_path)
    assert [(c.path.name, c.label, c.speaker) for c in clips] == [("a.wav", "three one", "voice1")]
    (tmp_path / "transcripts.tsv").write_text("a.wav three one\n")
    with pytest.raises(UserError, match=r"transcripts.tsv:1: expected `file<TAB>text"):
        data.transcribed_clips(tmp_path)
    with pytest.raises(UserError, match="no transcripts.tsv"):
        data.transcribed_clips(tmp_path / "elsewhere")


def test_a_transcripts_file_that_is_not_utf8_names_the_line(tmp_path):
    audio.write_wav(tmp_path / "a.wav", np.zeros(800), 8000)
    (tmp_path / "transcripts.tsv").write_bytes("a.wav\tthree\nb.wav\tcaf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"transcripts.tsv is not UTF-8 text \(line 2, byte \d+\)\. "
                                        r"Convert it to UTF-8"):
        data.transcribed_clips(tmp_path)


def test_joined_fsdd_sequences_are_transcribed_with_digit_words(fsdd):
    clips = [c for c in data.fsdd_clips(fsdd) if c.speaker == "jackson"]
    waveforms, texts, speakers = data.join_digit_recordings(clips, 4, 8000, 3, 5, seed=0)
    assert len(waveforms) == 4 and set(speakers) == {"jackson"}
    for waveform, text in zip(waveforms, texts):
        words = text.split()
        assert 3 <= len(words) <= 5 and set(words) <= set(data.DIGIT_WORDS)
        assert len(waveform) > 0.2 * 8000 * len(words)


def test_voice_sets_are_disjoint():
    assert not set(synthesis.TRAIN_VOICES) & set(synthesis.HELD_OUT_VOICES)
    train_variants = {v.split("+")[1] for v in synthesis.TRAIN_VOICES}
    assert not train_variants & {v.split("+")[1] for v in synthesis.HELD_OUT_VOICES}


@needs_espeak
def test_synthesize_a_corpus_with_espeak(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("three one four\n\nnine two\n")
    status = synthesize_command.main(["--text", str(text), "--output", str(tmp_path / "corpus"),
                                      "--voices", "held-out", "--copies", "1", "--seed", "3"])
    assert status == 0
    clips = data.transcribed_clips(tmp_path / "corpus")
    assert [clip.label for clip in clips] == ["three one four", "nine two"]
    assert all(clip.speaker in synthesis.HELD_OUT_VOICES for clip in clips)
    waveform, rate = audio.read_wav(clips[0].path, 8000)
    assert rate == 8000 and 0.5 < len(waveform) / rate < 4 and np.abs(waveform).max() > 0.1


@needs_espeak
def test_synthesize_digit_words_into_class_folders(tmp_path):
    status = synthesize_command.main(["--digit-words", "--class-folders", "--copies", "2",
                                      "--output", str(tmp_path / "words")])
    assert status == 0
    clips = data.keyword_clips(tmp_path / "words")
    assert sorted(clip.label for clip in clips) == sorted(data.DIGIT_WORDS * 2)
    assert all(Path(clip.path).parent.name == clip.label for clip in clips)


@needs_espeak
def test_synthesize_refuses_lines_that_cannot_be_folders(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("yes\nup/down\n")
    assert synthesize_command.main(["--text", str(text), "--class-folders", "--output", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-attention synthesize: error: ") and "'up/down'" in error
    assert not (tmp_path / "o").exists()


@needs_espeak
def test_synthesize_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert synthesize_command.main(["--digit-sequences", "1", "--output", str(tmp_path / "full")]) == 1
    assert synthesize_command.main(["--digit-sequences", "1", "--output", str(tmp_path / "o"),
                                    "--speeds", "fast"]) == 1
    assert synthesize_command.main(["--text", str(tmp_path / "none.txt"), "--output", str(tmp_path / "o")]) == 1
    assert synthesize_command.main(["--digit-sequences", "1", "--output", str(tmp_path / "o2"),
                                    "--voices", "xx-nonexistent"]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("keras-attention synthesize: error: ") for line in errors)
    assert "not empty" in errors[0] and "whole numbers" in errors[1] and "no such file" in errors[2]
    assert "espeak-ng failed for voice 'xx-nonexistent'" in errors[3]
