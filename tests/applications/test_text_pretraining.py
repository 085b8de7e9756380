"""`keras-attention pretrain text` and `finetune text-classification --from PRETRAINING_RUN`.

A tiny encoder is pretrained once (module fixture, a few seconds) as a masked language model
on 400 real Multi30k captions (a gzip file, as the data set ships them); the tests check that
it learned, that the run folder is whole, that a classifier started from it carries its
weights, and every bad input.
"""

import gzip
import json

import keras
import numpy as np
import tensorflow as tf
import pytest

from applications import cli
from applications.text_classification import model as model_lib
from applications.text_classification import pretraining
from applications.text_classification import recipe

TINY = ["--hidden-dim", "16", "--num-layers", "1", "--intermediate-dim", "32", "--num-heads", "2",
        "--vocabulary-size", "600", "--sequence-length", "32"]


def run_cli(capsys, *argv):
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, pattern, prog="keras-attention pretrain"):
    assert status == 1
    lines = [line for line in err.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from applications.common.data import data_dir

    with gzip.open(data_dir() / "translation/multi30k/val.en.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(400)]
    path = tmp_path_factory.mktemp("corpus") / "captions.en.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return path


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mlm"
    status = cli.main(["pretrain", "text", "--corpus", str(corpus), "--output", str(run), "--epochs", "4",
                       "--batch-size", "32", "--learning-rate", "0.005", "--quiet", *TINY])
    assert status == 0
    return run


def test_pretraining_lowers_the_masked_lm_loss(pretrained):
    metrics = json.loads((pretrained / "metrics.json").read_text())
    assert metrics["masked_token_loss"] < metrics["masked_token_loss_before"] - 0.5, metrics
    assert metrics["masked_token_accuracy"] > metrics["masked_token_accuracy_before"], metrics
    rows = (pretrained / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [float(row.split(",")[header.index("loss")]) for row in rows[1:]]
    assert len(losses) == 4 and losses[-1] < losses[0], losses


def test_the_run_folder_is_whole(pretrained):
    for name in ("model.keras", "metrics.json", "history.csv", "settings.json", "learning_curves.png",
                 "vocabulary.txt"):
        assert (pretrained / name).is_file(), name
    assert not list(pretrained.parent.glob(".*partial"))
    settings = json.loads((pretrained / "settings.json").read_text())
    assert settings["task"] == pretraining.TASK and settings["hidden_dim"] == 16
    vocabulary = (pretrained / "vocabulary.txt").read_text().splitlines()
    assert vocabulary[:3] == ["[PAD]", "[UNK]", "[MASK]"] and len(vocabulary) == settings["vocabulary_size"]
    encoder = keras.saving.load_model(pretrained / "model.keras", safe_mode=True)
    hidden = encoder(np.array(["a dog runs on the beach"]))
    assert tuple(hidden.shape) == (1, 32, 16)
    assert encoder.get_layer("tokenizer").get_vocabulary() == vocabulary


def test_a_classifier_started_from_it_carries_the_pretrained_encoder(pretrained, tmp_path):
    # --method frozen trains the heads only, so the encoders must still equal the pretrained one.
    status = cli.main(["finetune", "text-classification", "--from", str(pretrained), "--data", "sst2",
                       "--max-examples", "200", "--epochs", "1", "--ensemble-size", "2", "--method", "frozen",
                       "--quiet", "--output", str(tmp_path / "sst2")])
    assert status == 0
    encoder = keras.saving.load_model(pretrained / "model.keras", safe_mode=True).get_layer("encoder")
    classifier = keras.saving.load_model(tmp_path / "sst2" / "model.keras", safe_mode=True)
    parts = model_lib.parts(classifier)
    assert parts["tokenizer"].get_vocabulary() == (pretrained / "vocabulary.txt").read_text().splitlines()
    assert len(parts["members"]) == 2
    names = ["embedding", "encoder_0", "final_norm"]
    for member in parts["members"]:
        for name in names:
            theirs = encoder.get_layer(name).get_weights()
            for ours, pretrained_weights in zip(member.get_layer(name).get_weights(), theirs):
                np.testing.assert_array_equal(ours, pretrained_weights)
    settings = json.loads((tmp_path / "sst2" / "settings.json").read_text())
    assert settings["pretrained"] == str(pretrained) and settings["class_names"] == ["negative", "positive"]
    # A new head learns from nothing: the training schedule's peak rate, not fine-tuning's.
    assert settings["peak_learning_rate"] == recipe.SETTINGS["learning_rate"] != recipe.SETTINGS["finetune_learning_rate"]


def test_learning_rate_flag_sets_the_peak_from_a_pretraining_run(pretrained, tmp_path):
    status = cli.main(["finetune", "text-classification", "--from", str(pretrained), "--data", "sst2",
                       "--max-examples", "100", "--epochs", "1", "--ensemble-size", "1", "--learning-rate", "0.004",
                       "--quiet", "--output", str(tmp_path / "sst2")])
    assert status == 0
    assert json.loads((tmp_path / "sst2" / "settings.json").read_text())["peak_learning_rate"] == 0.004


def test_from_continues_the_encoder_on_a_new_corpus(pretrained, capsys, tmp_path):
    """`pretrain text --from RUN`: the run's vocabulary, sizes and weights, trained on new text."""
    from applications.common.data import data_dir

    with gzip.open(data_dir() / "translation/multi30k/train.en.gz", "rt", encoding="utf-8") as f:
        (tmp_path / "task.txt").write_text("".join(next(f) for _ in range(100)), encoding="utf-8")
    # A rate of 1e-9: one epoch leaves the copied weights as they were, to within float noise.
    status, _, err = run_cli(capsys, "pretrain", "text", "--from", pretrained, "--corpus", tmp_path / "task.txt",
                             "--epochs", "1", "--learning-rate", "1e-9", "--quiet", "--output", tmp_path / "adapted")
    assert status == 0, err
    settings = json.loads((tmp_path / "adapted" / "settings.json").read_text())
    assert settings["from"] == str(pretrained) and settings["hidden_dim"] == 16 and settings["num_layers"] == 1
    assert (tmp_path / "adapted" / "vocabulary.txt").read_text() == (pretrained / "vocabulary.txt").read_text()
    base = keras.saving.load_model(pretrained / "model.keras", safe_mode=True).get_layer("encoder")
    adapted = keras.saving.load_model(tmp_path / "adapted" / "model.keras", safe_mode=True).get_layer("encoder")
    for ours, theirs in zip(adapted.weights, base.weights, strict=True):
        np.testing.assert_allclose(np.array(ours), np.array(theirs), atol=1e-6)

    # The encoder keeps its sizes; --from takes a pretraining run only.
    status, _, err = run_cli(capsys, "pretrain", "text", "--from", pretrained, "--corpus", tmp_path / "task.txt",
                             "--hidden-dim", "32", "--quiet", "--output", tmp_path / "wider")
    one_line_error(status, err, "--hidden-dim: the encoder of --from")
    status, _, err = run_cli(capsys, "pretrain", "text", "--from", tmp_path / "task.txt", "--corpus",
                             tmp_path / "task.txt", "--quiet", "--output", tmp_path / "nothing")
    one_line_error(status, err, "not a pretraining run")
    assert not (tmp_path / "wider").exists() and not (tmp_path / "nothing").exists()


def test_copy_encoder_weights_refuses_other_sizes(pretrained):
    encoder = keras.saving.load_model(pretrained / "model.keras", safe_mode=True).get_layer("encoder")
    other, _ = pretraining.build_masked_lm(600, {**pretraining.SETTINGS, "hidden_dim": 8, "num_heads": 2,
                                                 "intermediate_dim": 16, "sequence_length": 32})
    with pytest.raises(ValueError, match="embedding"):
        model_lib.copy_encoder_weights(encoder, other)


def test_bad_corpus_files_are_one_line_errors(capsys, tmp_path):
    pretrain = ["pretrain", "text", "--output", tmp_path / "run", "--quiet", *TINY, "--corpus"]
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "missing.txt")
    one_line_error(status, err, "missing.txt: no such file")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "blank.txt")
    one_line_error(status, err, "blank.txt: the file holds no sentences")
    with gzip.open(tmp_path / "empty.txt.gz", "wt") as f:
        f.write("")
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "empty.txt.gz")
    one_line_error(status, err, "empty.txt.gz: the file holds no sentences")
    (tmp_path / "fake.gz").write_text("not gzip\n")
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "fake.gz")
    one_line_error(status, err, "fake.gz: cannot read it")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "latin.txt")
    one_line_error(status, err, "latin.txt: not UTF-8 text")
    (tmp_path / "one.txt").write_text("a single sentence\n")
    status, _, err = run_cli(capsys, *pretrain, tmp_path / "one.txt")
    one_line_error(status, err, "needs at least 2")
    assert not (tmp_path / "run").exists()


def test_bad_flags(capsys, tmp_path):
    status, _, err = run_cli(capsys, "pretrain", "text", "--output", tmp_path / "run")
    assert status == 2 and "--corpus" in err
    status, _, err = run_cli(capsys, "pretrain", "images", "--corpus", "x.txt", "--output", tmp_path / "run")
    assert status == 2 and "invalid choice" in err


def test_ensemble_size_needs_a_pretraining_run(capsys, tmp_path):
    (tmp_path / "classifier").mkdir()
    (tmp_path / "classifier" / "settings.json").write_text(json.dumps({"ensemble_size": 8}))
    status, _, err = run_cli(capsys, "finetune", "text-classification", "--from", tmp_path / "classifier",
                             "--data", "sst2", "--ensemble-size", "2", "--output", tmp_path / "out")
    one_line_error(status, err, "--ensemble-size", prog="keras-attention")


def test_random_replacements_never_put_padding_inside_a_sentence():
    # Every selected token replaced at random, over a vocabulary of [PAD], [UNK], [MASK]
    # and one piece: keras_hub would draw [PAD] about a quarter of the time.
    vocabulary = ["[PAD]", "[UNK]", "[MASK]", "word"]
    generator = pretraining.mask_generator(vocabulary, {**pretraining.SETTINGS, "mask_rate": 1.0})
    generator.mask_token_rate, generator.random_token_rate = 0.0, 1.0
    token_ids = tf.constant([[3] * 8 + [0] * 4] * 16, "int32")
    inputs, _, _ = pretraining.masked(generator, token_ids)
    ids = inputs["token_ids"].numpy()
    assert (ids[:, :8] != 0).all() and (ids[:, 8:] == 0).all()


# === Same-document objective ===


@pytest.fixture(scope="module")
def translation_documents(tmp_path_factory):
    """1,000 documents of two sentences: a Multi30k caption and its German translation."""
    from applications.common.data import data_dir

    folder = data_dir() / "translation/multi30k"
    with gzip.open(folder / "val.en.gz", "rt", encoding="utf-8") as en, \
            gzip.open(folder / "val.de.gz", "rt", encoding="utf-8") as de:
        pairs = [(next(en).strip(), next(de).strip()) for _ in range(1000)]
    path = tmp_path_factory.mktemp("corpus") / "documents.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(f"{english}\n{german}\n\n" for english, german in pairs)
    return path


def test_same_document_learns_to_pair_held_out_translations(translation_documents, tmp_path):
    # Held-out documents: the model must find a caption's translation among 32 sentences
    # (chance: 1 in 32) from words and names the two languages share and what it learned.
    metrics = pretraining.pretrain(
        [translation_documents], tmp_path / "run", epochs=10, batch_size=32, quiet=True,
        settings={"objective": "same-document", "hidden_dim": 32, "num_layers": 1, "intermediate_dim": 64,
                  "num_heads": 2, "vocabulary_size": 1000, "sequence_length": 32, "validation_fraction": 0.1,
                  "learning_rate": 0.003},
    )
    assert metrics["objective"] == "same-document"
    assert metrics["same_document_accuracy_before"] < 0.1 and metrics["same_document_accuracy"] > 0.3, metrics
    assert metrics["same_document_loss"] < metrics["same_document_loss_before"] - 1.0, metrics
    assert (metrics["train_documents"], metrics["validation_documents"]) == (900, 100)
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert settings["task"] == pretraining.TASK and settings["objective"] == "same-document"
    assert settings["epochs"] == 10


def test_same_document_continues_a_masked_lm_run_and_fine_tunes(pretrained, translation_documents, capsys,
                                                                 tmp_path):
    status, _, err = run_cli(capsys, "pretrain", "text", "--objective", "same-document", "--from", pretrained,
                             "--corpus", translation_documents, "--epochs", "1", "--batch-size", "32", "--quiet",
                             "--output", tmp_path / "doc")
    assert status == 0, err
    assert (tmp_path / "doc" / "vocabulary.txt").read_text() == (pretrained / "vocabulary.txt").read_text()
    base = keras.saving.load_model(pretrained / "model.keras", safe_mode=True).get_layer("encoder")
    continued = keras.saving.load_model(tmp_path / "doc" / "model.keras", safe_mode=True).get_layer("encoder")
    assert any(not np.allclose(ours, theirs) for ours, theirs in zip(continued.get_weights(), base.get_weights()))
    status, _, err = run_cli(capsys, "finetune", "text-classification", "--from", tmp_path / "doc", "--data", "sst2",
                             "--max-examples", "100", "--epochs", "1", "--ensemble-size", "1", "--quiet",
                             "--output", tmp_path / "sst2")
    assert status == 0, err
    settings = json.loads((tmp_path / "sst2" / "settings.json").read_text())
    assert settings["pretrained"] == str(tmp_path / "doc") and settings["hidden_dim"] == 16


def test_read_corpus_splits_documents_at_blank_lines_and_file_ends(tmp_path):
    (tmp_path / "a.txt").write_text("one\ntwo\n\n\n  \nthree\n", encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("four\nfive")
    documents = pretraining.read_corpus([tmp_path / "a.txt", tmp_path / "b.txt.gz"])
    assert documents == [["one", "two"], ["three"], ["four", "five"]]


def test_document_pairs_are_two_sentences_of_one_document():
    # Sentence row r holds the id r + 1; documents of 2, 3 and 5 sentences (rows 0-1, 2-4, 5-9).
    token_ids = np.zeros((10, 4), "int32")
    token_ids[:, 0] = np.arange(1, 11)
    starts, counts = np.array([0, 2, 5], "int32"), np.array([2, 3, 5], "int32")
    document = np.repeat([0, 1, 2], counts)  # the document of each row
    keras.utils.set_random_seed(0)
    training = pretraining.document_pairs_dataset(token_ids, starts, counts, batch_size=3, seed=0)
    held_out = pretraining.held_out_pairs_dataset(token_ids, starts, counts, batch_size=64, seed=0)
    seen = set()
    # `fit` draws every epoch from one iterator of the repeated dataset (`applications.common.training._one_iterator`).
    for pairs, labels in [*training.repeat().take(200), *held_out]:
        np.testing.assert_array_equal(labels, np.arange(3))
        anchors, positives = pairs["anchor"][:, 0].numpy() - 1, pairs["positive"][:, 0].numpy() - 1
        assert (anchors != positives).all()
        np.testing.assert_array_equal(document[anchors], document[positives])
        seen.update(zip(anchors.tolist(), positives.tolist()))
    # New pairs every epoch: all ordered pairs of different sentences of a document, 2 + 6 + 20.
    assert len(seen) == 28


def test_symmetric_contrastive_loss_matches_numpy():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 1.5, 0.3], [-0.4, 0.9, 0.2]], "float32")

    def cross_entropy(rows):  # of picking the diagonal, row by row
        return np.log(np.exp(rows).sum(axis=1)) - np.diag(rows)

    expected = (cross_entropy(logits) + cross_entropy(logits.T)) / 2
    result = pretraining.symmetric_contrastive_loss(np.arange(3), logits)
    np.testing.assert_allclose(np.array(result), expected, rtol=1e-5)


def test_same_document_bad_corpora_are_one_line_errors(capsys, tmp_path):
    pretrain = ["pretrain", "text", "--objective", "same-document", "--output", tmp_path / "run", "--quiet", *TINY]
    (tmp_path / "sentences.txt").write_text("".join(f"sentence number {i}\n" for i in range(50)))
    status, _, err = run_cli(capsys, *pretrain, "--corpus", tmp_path / "sentences.txt")
    one_line_error(status, err, "holds 1 document(s) of two sentences or more")
    (tmp_path / "few.txt").write_text("".join(f"first of {i}\nsecond of {i}\n\n" for i in range(10)))
    status, _, err = run_cli(capsys, *pretrain, "--corpus", tmp_path / "few.txt")
    one_line_error(status, err, "fewer than a batch (64)")
    status, _, err = run_cli(capsys, *pretrain, "--corpus", tmp_path / "few.txt", "--max-sentences", "5")
    one_line_error(status, err, "--max-sentences")
    assert not (tmp_path / "run").exists()


def test_split_held_out_keeps_a_minimum_aside_and_one_to_fit():
    fit_part, held_out = pretraining.split_held_out(list(range(66)), 0.02, seed=0, minimum=2)
    assert len(held_out) == 2 and sorted(fit_part + held_out) == list(range(66))
    fit_part, held_out = pretraining.split_held_out(list(range(2)), 0.5, seed=0, minimum=2)
    assert (len(fit_part), len(held_out)) == (1, 1)
