"""Translation data readers, tokenization and the pieces of long sentences."""

import gzip
import unicodedata
import zipfile

import numpy as np
import pytest

from applications.common import UserError
from applications.translation import data, tokenization
from applications.translation.model import split_at_words


def write(path, lines, compress=False):
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text) if compress else text)
    return path


# === Multi30k as published ===
def test_multi30k_splits_and_languages(data_dir):
    test = data.load_parallel_text("multi30k", "en", "de", "test")
    assert len(test) == 1000
    assert test.sources[0] == "A man in an orange hat starring at something."
    assert test.targets[0].startswith("Ein Mann mit einem orangefarbenen Hut")
    validation = data.load_parallel_text(str(data_dir / "translation" / "multi30k"), "fr", "en", "validation")
    assert len(validation) == 1014 and validation.source_language == "fr"
    assert len(data.load_parallel_text("multi30k", "en", "fr", "train")) == 29000


def test_multi30k_unknown_language_names_the_languages_present():
    with pytest.raises(UserError, match="Languages present: de, en, fr"):
        data.load_parallel_text("multi30k", "en", "cs", "test")


def test_same_source_and_target_is_an_error():
    with pytest.raises(UserError, match="both 'en'"):
        data.load_parallel_text("multi30k", "en", "en", "test")


# === Any pair of line-aligned files ===
def test_folder_of_split_files_plain_and_gzip(tmp_path):
    write(tmp_path / "train.en", ["a cat", "a dog"])
    write(tmp_path / "train.de.gz", ["eine Katze", "ein Hund"], compress=True)
    write(tmp_path / "dev.en", ["a bird"])
    write(tmp_path / "dev.de", ["ein Vogel"])
    train = data.load_parallel_text(str(tmp_path), "en", "de", "train")
    assert train.sources == ["a cat", "a dog"] and train.targets == ["eine Katze", "ein Hund"]
    assert data.load_parallel_text(str(tmp_path), "en", "de", "validation").targets == ["ein Vogel"]
    with pytest.raises(UserError, match="no 'test' split"):
        data.load_parallel_text(str(tmp_path), "en", "de", "test")


def test_prefix_and_comma_pairs_are_split_70_15_15(tmp_path):
    sources = [f"sentence {i}" for i in range(100)]
    targets = [f"Satz {i}" for i in range(100)]
    write(tmp_path / "corpus.en", sources)
    write(tmp_path / "corpus.de.gz", targets, compress=True)
    parts = {s: data.load_parallel_text(str(tmp_path / "corpus"), "en", "de", s) for s in ("train", "validation", "test")}
    assert [len(p) for p in parts.values()] == [70, 15, 15]
    assert sorted(sum((p.sources for p in parts.values()), [])) == sorted(sources)
    for part in parts.values():  # Still aligned.
        assert all(s.split()[1] == t.split()[1] for s, t in zip(part.sources, part.targets))
    pair = f"{tmp_path / 'corpus.en'},{tmp_path / 'corpus.de.gz'}"
    assert data.load_parallel_text(pair, "en", "de", "test").sources == parts["test"].sources


def test_files_of_different_lengths_are_an_error(tmp_path):
    write(tmp_path / "train.en", ["one", "two", "three"])
    write(tmp_path / "train.de", ["eins", "zwei"])
    with pytest.raises(UserError, match=r"train.en has 3 lines, .*train.de has 2"):
        data.load_parallel_text(str(tmp_path), "en", "de", "train")


def test_empty_lines_are_kept_aligned_then_dropped_with_a_warning(tmp_path):
    write(tmp_path / "train.en", ["one", "", "three", "four"])
    write(tmp_path / "train.de", ["eins", "zwei", "", "vier"])
    corpus = data.load_parallel_text(str(tmp_path), "en", "de", "train")
    assert corpus.sources == ["one", "", "three", "four"]
    with pytest.warns(UserWarning, match="skipped 2 of 4 pairs"):
        kept = data.drop_empty_pairs(corpus)
    assert kept.sources == ["one", "four"] and kept.targets == ["eins", "vier"]
    write(tmp_path / "train.en", ["", ""])
    write(tmp_path / "train.de", ["x", ""])
    with pytest.raises(UserError, match="no pair has text on both sides"):
        data.drop_empty_pairs(data.load_parallel_text(str(tmp_path), "en", "de", "train"))


def test_text_that_is_not_utf8_is_an_error(tmp_path):
    (tmp_path / "train.en").write_bytes(b"ok\nna\xefve\n")
    write(tmp_path / "train.de", ["gut", "naiv"])
    with pytest.raises(UserError, match="not UTF-8 text \\(line 2"):
        data.load_parallel_text(str(tmp_path), "en", "de", "train")


# === TSV of pairs ===
def test_tsv_with_and_without_a_header(tmp_path):
    write(tmp_path / "pairs.tsv", ["Hello.\tHallo.\textra", "Thanks.\tDanke."])
    corpus = data.read_tsv(tmp_path / "pairs.tsv", "en", "de")
    assert corpus.sources == ["Hello.", "Thanks."] and corpus.targets == ["Hallo.", "Danke."]
    write(tmp_path / "header.tsv", ["de\ten", "Hallo.\tHello."])
    corpus = data.read_tsv(tmp_path / "header.tsv", "en", "de")
    assert corpus.sources == ["Hello."] and corpus.targets == ["Hallo."]
    write(tmp_path / "bad.tsv", ["no tab here"])
    with pytest.raises(UserError, match="line 1: expected `source<TAB>target`"):
        data.read_tsv(tmp_path / "bad.tsv", "en", "de")


# === Tatoeba ===
def test_tatoeba_spa_eng_zip_both_directions(data_dir):
    english_spanish = data.read_tatoeba_zip(data_dir / "translation" / "spa-eng" / "spa-eng.zip", "en", "es")
    assert len(english_spanish) == 118964
    assert (english_spanish.sources[0], english_spanish.targets[0]) == ("Go.", "Ve.")
    test = data.load_parallel_text("spa-eng", "es", "en", "test")
    assert len(test) == round(118964 * 0.15) and test.source_language == "es"
    with pytest.raises(UserError, match="holds English"):
        data.load_parallel_text("spa-eng", "en", "de", "test")


def test_a_zip_that_is_not_tatoeba_is_an_error(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("a.csv", "x")
    with pytest.raises(UserError, match="expected one sentence file"):
        data.load_parallel_text(str(tmp_path / "other.zip"), "en", "es", "train")


def test_unknown_data_is_an_error(tmp_path):
    with pytest.raises(UserError, match="not a known data set"):
        data.load_parallel_text(str(tmp_path / "missing"), "en", "de", "train")


# === Tokenization ===
@pytest.fixture(scope="module")
def multi30k_proto():
    corpus = data.load_parallel_text("multi30k", "en", "de", "validation")
    return tokenization.learn_vocabulary(corpus.sources + corpus.targets, 1000)


@pytest.fixture
def multi30k_tokenizer(multi30k_proto):
    # A tokenizer per test: `keras.backend.clear_session()` between tests
    # invalidates the SentencePiece resources of earlier tokenizers.
    return tokenization.make_tokenizer(multi30k_proto)


def test_detokenize_gives_back_the_text(multi30k_tokenizer):
    # Exactly, up to NFKC normalization (one reference has a no-break space).
    references = data.load_parallel_text("multi30k", "en", "de", "validation").targets[:200]
    ids = tokenization.tokenize(multi30k_tokenizer, references).to_tensor()
    texts = tokenization.to_text(tokenization.detokenize(multi30k_tokenizer, ids))
    assert texts == [unicodedata.normalize("NFKC", r) for r in references]
    assert sum(t == r for t, r in zip(texts, references)) == 199


def test_ids_and_special_tokens(multi30k_tokenizer):
    vocabulary = multi30k_tokenizer.get_vocabulary()
    assert vocabulary[:4] == [tokenization.PAD, tokenization.UNKNOWN, tokenization.START, tokenization.END]
    assert 900 <= len(vocabulary) <= 1100
    ids = np.array([[tokenization.START_ID, *tokenization.tokenize(multi30k_tokenizer, ["Ein Hund."]).to_list()[0],
                     tokenization.END_ID, 50, 60, 0]])
    assert tokenization.to_text(tokenization.detokenize(multi30k_tokenizer, ids)) == ["Ein Hund."]


def test_characters_outside_the_vocabulary_become_unknown(multi30k_tokenizer):
    ids = tokenization.tokenize(multi30k_tokenizer, ["Ein ☃ Hund 🙂."]).to_list()[0]
    assert ids.count(tokenization.UNKNOWN_ID) == 2
    text = tokenization.to_text(tokenization.detokenize(multi30k_tokenizer, np.array([ids])))[0]
    assert text.replace(" ", "") == "Ein⁇Hund⁇."


def test_a_small_corpus_learns_a_smaller_vocabulary():
    proto = tokenization.learn_vocabulary(["a cat sat", "a dog ran", "the cat ran"] * 5, 8000)
    assert len(tokenization.make_tokenizer(proto).get_vocabulary()) < 100


def test_split_at_words_prefers_clause_ends():
    vocabulary = ["<pad>", "<unk>", "<s>", "</s>", "\u2581a", "b", "\u2581c", ",", "\u2581d", "\u2581e"]
    # Words: "ab" "c," "d" "e" "d" -> 2 + 2 + 1 + 1 + 1 pieces.
    chunks = split_at_words([4, 5, 6, 7, 8, 9, 8], vocabulary, limit=5)
    assert chunks == [[4, 5, 6, 7], [8, 9, 8]]
    # A word longer than the limit is cut inside; its rest goes on with the next word.
    assert split_at_words([4, 5, 5, 5, 5, 5, 5, 8], vocabulary, limit=4) == [[4, 5, 5, 5], [5, 5, 5, 8]]
    assert all(len(c) <= 3 for c in split_at_words(list(range(4, 10)) * 3, vocabulary, limit=3))
