"""The translation application: models, cached decoding, training on real data, the command line."""

import json
import warnings

import keras
import numpy as np
import pytest

from applications.cli import main
from applications.common import load_model
from applications.translation import data, evaluation, tokenization
from applications.translation.model import (
    LabelSmoothedCrossEntropy,
    RNNAttentionSeq2Seq,
    TransformerSeq2Seq,
    Translator,
    build_seq2seq,
)

TINY_TRANSFORMER = ["--hidden-dim", "64", "--num-layers", "1", "--num-heads", "2", "--intermediate-dim", "128",
                    "--dropout", "0"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny Transformer trained on 300 Multi30k pairs for 12 epochs (a minute or two on 2 cores)."""
    run = tmp_path_factory.mktemp("translation") / "run"
    status = main(["train", "translation", "--output", str(run), "--max-examples", "300", "--epochs", "12",
                   "--batch-size", "32", "--vocabulary-size", "400", "--learning-rate", "3e-3",
                   "--warmup-steps", "30", "--evaluate-examples", "30", "--quiet", *TINY_TRANSFORMER])
    assert status == 0
    return run


@pytest.fixture(scope="module")
def proto():
    corpus = data.load_parallel_text("multi30k", "en", "de", "validation")
    return tokenization.learn_vocabulary(corpus.sources[:300] + corpus.targets[:300], 300)


def tiny_translator(proto, architecture, **settings):
    source, target = tokenization.make_tokenizer(proto), tokenization.make_tokenizer(proto)
    size = source.vocabulary_size()
    if architecture == "transformer":
        settings = dict(dict(hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32), **settings)
    else:
        settings = dict(dict(embedding_dim=16, units=16), **settings)
    return Translator(build_seq2seq(architecture, size, size, 12, **settings), source, target)


def source_ids(translator, sentences):
    rows = tokenization.tokenize(translator.source_tokenizer, sentences).to_list()
    ids = np.zeros((len(rows), max(map(len, rows))), "int32")
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row[: ids.shape[1]]
    return ids[:, : translator.sequence_length]


# === Training on real data ===
def test_training_learns_and_writes_a_complete_run(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    # Chance is 1/400 and the most frequent piece is about 7% of the tokens.
    assert metrics["val_accuracy"] > 0.15, metrics
    assert metrics["test_chrf_greedy"] > 8.0, metrics  # An untrained model scores about 1.
    assert metrics["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")
    for name in ("model.keras", "settings.json", "history.csv", "learning_curves.png", "alignment.png",
                 "test-greedy/hypotheses.de", "test-greedy/scores.json", "test-beam/hypotheses.de"):
        assert (trained_run / name).is_file(), name
    assert len((trained_run / "test-greedy" / "hypotheses.de").read_text().splitlines()) == 30
    assert json.loads((trained_run / "settings.json").read_text())["application"] == "translation"


def test_the_saved_model_translates_raw_strings_as_before(trained_run):
    translator = load_model(trained_run)  # safe_mode=True, no custom_objects.
    assert isinstance(translator, Translator)
    test = data.load_parallel_text("multi30k", "en", "de", "test").subset(range(5))
    expected = (trained_run / "test-greedy" / "hypotheses.de").read_text().splitlines()[:5]
    assert translator.translate(test.sources) == expected
    assert isinstance(translator.translate("A man rides a bike."), str)


def test_cached_greedy_decoding_equals_recomputing_the_prefix(trained_run):
    translator = load_model(trained_run)
    test = data.load_parallel_text("multi30k", "en", "de", "test").subset(range(6))
    ids = source_ids(translator, test.sources)
    cached = np.asarray(translator.generate(ids, "greedy", cached=True))
    uncached = np.asarray(translator.generate(ids, "greedy", cached=False))
    np.testing.assert_array_equal(cached, uncached)
    beam_of_one = np.asarray(translator.generate(ids, "beam", beam_width=1, length_penalty=0.0))
    np.testing.assert_array_equal(beam_of_one, cached)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_rnn_cached_decoding_equals_recomputing_the_prefix(proto, attention):
    translator = tiny_translator(proto, "rnn-attention", attention=attention)
    ids = source_ids(translator, ["A man rides a bike.", "Two dogs play in the snow together."])
    cached = np.asarray(translator.generate(ids, "greedy", cached=True))
    uncached = np.asarray(translator.generate(ids, "greedy", cached=False))
    np.testing.assert_array_equal(cached, uncached)
    beam = np.asarray(translator.generate(ids, "beam", beam_width=3, cached=True))
    np.testing.assert_array_equal(beam, np.asarray(translator.generate(ids, "beam", beam_width=3, cached=False)))


@pytest.mark.parametrize("architecture", ["transformer", "rnn-attention"])
def test_a_translation_is_the_same_alone_and_batched_with_a_longer_sentence(proto, architecture):
    # Untrained, the model never ends by itself: every output runs to its sentence's cap,
    # 2 * s + 10 for its own length s, not for the batch's padded width.
    size = tokenization.make_tokenizer(proto).vocabulary_size()
    settings = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32) if architecture == "transformer" \
        else dict(embedding_dim=16, units=16)
    translator = Translator(build_seq2seq(architecture, size, size, 40, **settings),
                            tokenization.make_tokenizer(proto), tokenization.make_tokenizer(proto))
    ids = source_ids(translator, ["A dog.", "A man in a blue shirt is riding a bike down the street."])
    short = int((ids[0] > 0).sum())
    for search in ("greedy", "beam"):
        alone = np.asarray(translator.generate(ids[:1, :short], search, beam_width=2))[0]
        batched = np.asarray(translator.generate(ids, search, beam_width=2))[0]
        assert len(alone) == 2 * short + 11 and alone[-1] == tokenization.END_ID  # Start, tokens, end.
        np.testing.assert_array_equal(batched[: len(alone)], alone)
        assert not batched[len(alone):].any()
    with pytest.raises(ValueError, match="at most 40"):
        translator.generate(np.ones((1, 41), "int32"))


@pytest.mark.parametrize("architecture", ["transformer", "rnn-attention"])
def test_save_and_reload_keeps_weights_and_vocabularies(proto, architecture, tmp_path):
    translator = tiny_translator(proto, architecture)
    sentences = ["A man rides a bike.", "A dog."]
    before = translator.translate(sentences, search="beam", beam_width=2)
    translator.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert type(reloaded.seq2seq) is type(translator.seq2seq)
    assert reloaded.seq2seq.get_config() == translator.seq2seq.get_config()
    assert reloaded.translate(sentences, search="beam", beam_width=2) == before


# === Bad inputs ===
def test_empty_long_and_unknown_inputs_never_crash(trained_run):
    translator = load_model(trained_run)
    long_sentence = " ".join(["A man in a blue shirt is riding a bike down the street,"] * 12)
    with pytest.warns(UserWarning, match="1 sentence\\(s\\) longer than the model's 64 source tokens"):
        translations = translator.translate(["", long_sentence, "☃☃ 🙂 ☃", "   "])
    assert translations[0] == "" and translations[3] == ""
    assert len(translations[1]) > 0 and isinstance(translations[2], str)
    # The long sentence went in pieces; each fits the model.
    pieces = translator.source_chunks([long_sentence])[0]
    assert len(pieces) >= 3 and all(len(p) <= 64 for p in pieces)


def test_tied_embeddings_are_one_variable(proto):
    transformer = tiny_translator(proto, "transformer", share_embeddings=True).seq2seq
    assert transformer.encoder_embedding is transformer.decoder_embedding
    assert transformer.head.embedding is transformer.decoder_embedding
    embeddings = [w for w in transformer.weights if "embeddings" in w.path and "token" in w.path]
    assert len(embeddings) == 1


# === Losses and errors ===
def test_label_smoothed_cross_entropy_golden_value():
    logits = np.array([[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]], "float32")
    labels = np.array([[0, 2]])
    weights = np.array([[1.0, 0.0]], "float32")  # The second position is padding.
    log_probs = logits[0, 0] - np.log(np.exp(logits[0, 0]).sum())
    expected = 0.9 * -log_probs[0] + 0.1 * -log_probs.mean()
    loss = LabelSmoothedCrossEntropy(0.1)(labels, logits, sample_weight=weights)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TransformerSeq2Seq(10, 12, 8, hidden_dim=8, num_heads=2, share_embeddings=True), "one vocabulary"),
        (lambda: TransformerSeq2Seq(10, 10, 8, hidden_dim=10, num_heads=4), "divisible"),
        (lambda: TransformerSeq2Seq(10, 10, 0), "sequence_length"),
        (lambda: TransformerSeq2Seq(10, 10, 8, dropout=1.5), "dropout"),
        (lambda: RNNAttentionSeq2Seq(10, 10, 8, attention="dot"), "Unknown attention"),
        (lambda: RNNAttentionSeq2Seq(10, 10, 8, units=15), "even"),
        (lambda: build_seq2seq("lstm", 10, 10, 8), "Unknown architecture"),
        (lambda: LabelSmoothedCrossEntropy(1.0), "label_smoothing"),
    ],
)
def test_argument_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_search_is_an_error(proto):
    with pytest.raises(ValueError, match="Unknown search"):
        tiny_translator(proto, "transformer").search("sampling")


# === The command line ===
def test_cli_evaluate_writes_hypotheses_beside_the_scores(trained_run, tmp_path, capsys):
    output = tmp_path / "evaluation"
    status = main(["evaluate", "translation", "--model", str(trained_run), "--split", "validation",
                   "--max-examples", "20", "--search", "beam", "--beam-width", "2", "--output", str(output),
                   "--json", str(tmp_path / "scores.json")])
    assert status == 0
    scores = json.loads((output / "scores.json").read_text())
    assert scores["examples"] == 20 and 0 <= scores["bleu"] <= 100 and scores["chrf"] > 0
    assert len((output / "hypotheses.de").read_text().splitlines()) == 20
    assert json.loads((tmp_path / "scores.json").read_text())["bleu"] == scores["bleu"]
    assert "bleu" in capsys.readouterr().out


def test_cli_predict_sentences_file_and_alignment(trained_run, tmp_path, capsys):
    assert main(["predict", "translation", "--model", str(trained_run), "A man rides a bike.", "A dog.",
                 "--alignment", str(tmp_path / "alignment.png")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] and printed[1]
    assert (tmp_path / "alignment.png").stat().st_size > 1000
    (tmp_path / "input.en").write_text("A man rides a bike.\n\nTwo dogs play.\n")
    assert main(["predict", "translation", "--model", str(trained_run), "--input", str(tmp_path / "input.en"),
                 "--output", str(tmp_path / "output.de"), "--search", "beam"]) == 0
    lines = (tmp_path / "output.de").read_text().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[0] and lines[2] and lines[3] == ""


def test_cli_translate_verb(trained_run, capsys):
    assert main(["translate", "--model", str(trained_run), "A man rides a bike."]) == 0
    assert capsys.readouterr().out.strip()


def test_cli_export_serves_raw_strings(trained_run, tmp_path, capsys):
    export = tmp_path / "export"
    assert main(["export", "translation", "--model", str(trained_run), "--output", str(export)]) == 0
    assert (export / "saved_model.pb").is_file()
    capsys.readouterr()
    translator = load_model(trained_run)
    sentences = ["A man rides a bike.", "", "A dog runs on the grass."]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = translator.translate(sentences)
    exported = evaluation.exported_translate(load_model(export), sentences)
    assert exported == expected


def test_cli_finetune_on_a_tsv(trained_run, tmp_path):
    test = data.load_parallel_text("multi30k", "en", "de", "test")
    (tmp_path / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in zip(test.sources[:60], test.targets[:60])))
    output = tmp_path / "finetuned"
    assert main(["finetune", "translation", "--model", str(trained_run), "--data", str(tmp_path / "pairs.tsv"),
                 "--output", str(output), "--epochs", "1", "--quiet"]) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["train_examples"] == 42 and "test_bleu_greedy" in metrics
    settings = json.loads((output / "settings.json").read_text())
    assert settings["finetuned_from"].endswith("model.keras")


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "train.en").write_text("one\ntwo\nthree\n")
    (tmp_path / "train.de").write_text("eins\nzwei\n")
    assert main(["train", "translation", "--data", str(tmp_path), "--output", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("keras-attention: error:") and "3 lines" in error and "\n" not in error
    assert not (tmp_path / "run").exists()
    assert main(["train", "translation", "--architecture", "rnn-attention", "--hidden-dim", "8",
                 "--output", str(tmp_path / "run")]) == 1
    assert "--hidden-dim do not apply" in capsys.readouterr().err
    assert main(["predict", "translation", "--model", str(tmp_path / "missing"), "Hello."]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_cli_refuses_bad_model_and_schedule_flags_before_training(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"A man with {i} dogs.\tEin Mann mit {i} Hunden.\n" for i in range(30)))
    train = ["train", "translation", "--data", str(pairs), "--output", str(tmp_path / "run"), "--quiet"]
    for flags, message in (
        (["--num-heads", "3", "--hidden-dim", "16"],
         "--hidden-dim 16 is not divisible by --num-heads 3: each attention head takes an equal share"),
        (["--architecture", "rnn-attention", "--units", "15"], "--units 15 is odd"),
        # Known only once the vocabulary learner has counted the characters of the text.
        (["--vocabulary-size", "5", *TINY_TRANSFORMER], "--vocabulary-size 5 is too small for the training text"),
    ):
        assert main([*train, *flags]) == 1
        error = capsys.readouterr().err.strip()
        assert error.startswith(f"keras-attention: error: {message}") and "\n" not in error
    assert "Give --vocabulary-size" in error
    assert main([*train, "--max-minutes", "-1"]) == 2
    assert "argument --max-minutes: expected a number > 0, received '-1'" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pairs.tsv"]  # No run, no .run.partial.
