"""Scoring translations (sacreBLEU's BLEU and chrF), alignment pictures, translate and export.

Scores are corpus-level over a whole test set, with sacreBLEU's standard
settings (BLEU: 13a tokenization, exponential smoothing, case-sensitive;
chrF: character 6-grams, beta 2), on detokenized text against the references
as published. Each evaluation writes the hypotheses, one a line, beside its
scores.
"""

import time
from pathlib import Path

import numpy as np

from applications.common import UserError, load_model, load_settings, model_path, write_json
from applications.translation import data as data_module
from applications.translation.data import drop_empty_pairs, load_parallel_text, read_input_lines, write_lines

SCORES_FILE = "scores.json"
ALIGNMENT_FILE = "alignment.png"


def corpus_scores(hypotheses, references):
    """Corpus BLEU and chrF of `hypotheses` against one reference each (sacreBLEU defaults).

    Returns:
        A dict: `bleu`, `chrf` (0-100), the BLEU n-gram precisions, brevity
        penalty, lengths and the sacreBLEU signatures.

    Example:

    >>> scores = corpus_scores(["Ein Mann fährt Fahrrad."], ["Ein Mann fährt Fahrrad."])
    >>> round(scores["bleu"], 1), round(scores["chrf"], 1)
    (100.0, 100.0)
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references.")
    bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu = bleu_metric.corpus_score(hypotheses, [references])
    chrf = chrf_metric.corpus_score(hypotheses, [references])
    return {
        "bleu": float(bleu.score),
        "chrf": float(chrf.score),
        "bleu_precisions": [float(p) for p in bleu.precisions],
        "brevity_penalty": float(bleu.bp),
        "hypothesis_length": int(bleu.sys_len),
        "reference_length": int(bleu.ref_len),
        "bleu_signature": str(bleu_metric.get_signature()),
        "chrf_signature": str(chrf_metric.get_signature()),
    }


def check_translator(model, path):
    from applications.translation.model import Translator

    if not isinstance(model, Translator):
        raise UserError(f"--model {path} is not a translation model (it holds a {type(model).__name__}).")
    return model


def score_translator(translator, corpus, search="greedy", beam_width=4, length_penalty=0.6, batch_size=64,
                     output=None):
    """Translate `corpus.sources`, score against `corpus.targets`; write hypotheses and scores to `output`.

    Pairs with an empty side are left out (with a warning); every other line
    is translated and scored, whatever its length.

    Returns:
        The scores dict (see `corpus_scores`), with `examples`, `search`,
        `seconds` and `sentences_per_second`.
    """
    corpus = drop_empty_pairs(corpus)
    start = time.perf_counter()
    hypotheses = translator.translate(corpus.sources, search=search, beam_width=beam_width,
                                      length_penalty=length_penalty, batch_size=batch_size)
    seconds = time.perf_counter() - start
    scores = corpus_scores(hypotheses, corpus.targets)
    scores.update(
        examples=len(corpus),
        search=search if search == "greedy" else f"beam {beam_width}, length penalty {length_penalty}",
        seconds=round(seconds, 2),
        sentences_per_second=round(len(corpus) / max(seconds, 1e-9), 2),
        data=corpus.description,
    )
    if output is not None:
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        write_lines(output / f"hypotheses.{corpus.target_language}", hypotheses)
        write_json(output / SCORES_FILE, scores)
    return scores


def plot_alignment(source_pieces, target_pieces, scores, path, title=None):
    """Save the cross-attention of a translation (target rows, source columns) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = np.asarray(scores, dtype="float32")
    width = max(4.0, 0.45 * len(source_pieces) + 2.0)
    height = max(3.0, 0.35 * len(target_pieces) + 1.5)
    figure, axis = plt.subplots(figsize=(width, height))
    image = axis.imshow(scores, cmap="viridis", aspect="auto", vmin=0.0)
    axis.set_xticks(range(len(source_pieces)), source_pieces, rotation=60, ha="right")
    axis.set_yticks(range(len(target_pieces)), target_pieces)
    axis.set_xlabel("source")
    axis.set_ylabel("translation")
    if title:
        axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def save_alignment(translator, sentence, path, search="greedy"):
    """Translate `sentence` and save its cross-attention picture at `path`; returns the translation."""
    translation = translator.translate(sentence, search=search)
    source_pieces, target_pieces, scores = translator.alignment(sentence, translation=translation)
    plot_alignment(source_pieces, target_pieces, scores, path, title=f"{sentence}\n{translation}")
    return translation


# === Command-line verbs ===
def _languages(settings, source, target):
    return source or settings.get("source_language", data_module.DEFAULT_SOURCE), \
        target or settings.get("target_language", data_module.DEFAULT_TARGET)


def evaluate(model, data=None, split=None, source=None, target=None, search="greedy", beam_width=4,
             length_penalty=0.6, batch_size=64, output=None, max_examples=None):
    """`evaluate translation`: BLEU and chrF on a whole split; hypotheses and scores in `output`."""
    translator = check_translator(load_model(model), model)
    settings = load_settings(model_path(model))
    source, target = _languages(settings, source, target)
    data = data or settings.get("data")
    corpus = load_parallel_text(data, source, target, split or "test")
    if max_examples:
        corpus = corpus.subset(range(min(max_examples, len(corpus))))
    if output is None:
        folder = model_path(model).parent
        output = folder / "evaluation" / f"{split or 'test'}-{search}"
    scores = score_translator(translator, corpus, search, beam_width, length_penalty, batch_size, output)
    scores["output"] = str(output)
    print(f"Wrote the hypotheses and {SCORES_FILE} to {output}")
    return scores


def translate(model, sentences=(), input_file=None, output_file=None, search="greedy", beam_width=4,
              length_penalty=0.6, batch_size=64, alignment=None):
    """`predict translation` (`translate`): sentences or a file in, translations out."""
    if input_file is None and not sentences:
        raise UserError('Nothing to translate: give sentences ("A man rides a bike.") or --input FILE.')
    if input_file is not None and sentences:
        raise UserError("Give sentences or --input FILE, not both.")
    lines = read_input_lines(input_file) if input_file is not None else list(sentences)
    loaded = load_model(model)
    start = time.perf_counter()
    if isinstance(loaded, _exported_model_class()):
        if search != "greedy" or alignment:
            raise UserError(f"--model {model} is an export: it translates with the search it was exported "
                            "with and draws no alignment. Use the run folder for other settings.")
        translations = exported_translate(loaded, lines, batch_size)
    else:
        translator = check_translator(loaded, model)
        translations = translator.translate(lines, search=search, beam_width=beam_width,
                                            length_penalty=length_penalty, batch_size=batch_size)
        if alignment:
            first = next((line for line in lines if line), None)
            if first is None:
                raise UserError("--alignment needs a non-empty sentence.")
            source_pieces, target_pieces, scores = translator.alignment(first, translation=translations[lines.index(first)])
            plot_alignment(source_pieces, target_pieces, scores, alignment,
                           title=f"{first}\n{translations[lines.index(first)]}")
            print(f"Wrote {alignment}")
    seconds = time.perf_counter() - start
    if output_file is not None:
        write_lines(output_file, translations)
        print(f"Wrote {len(translations)} translations to {output_file}")
    else:
        for translation in translations:
            print(translation)
    return {"sentences": len(lines), "seconds": round(seconds, 2)}


def _exported_model_class():
    from applications.common import ExportedModel

    return ExportedModel


def exported_translate(exported, lines, batch_size=64):
    """Translate with an exported SavedModel (strings in, strings out)."""
    import tensorflow as tf

    results = []
    for start in range(0, len(lines), batch_size):
        batch = lines[start : start + batch_size]
        outputs = exported(tf.constant(batch, tf.string))
        results.extend(s.decode("utf-8") for s in np.asarray(outputs).tolist())
    return results


def export(model, output=None, search="greedy", beam_width=4, length_penalty=0.6, overwrite=False):
    """`export translation`: a SavedModel whose `serve` endpoint maps sentences to translations.

    The export truncates sources longer than the model's sequence length
    (the Python `Translator` translates them in pieces instead).
    """
    import tensorflow as tf

    from applications.common import export_model

    path = model_path(model)
    translator = check_translator(load_model(path), model)
    settings = dict(load_settings(path))
    settings.update(search=search, beam_width=beam_width, length_penalty=length_penalty)
    output = Path(output) if output else path.parent / "export"
    serve = translator.serving_function(search, beam_width, length_penalty)
    export_model(_serving_model(translator, serve), output, settings=settings,
                 input_signature=[tf.TensorSpec([None], tf.string, name="sentences")], overwrite=overwrite)
    print(f"Exported to {output} (endpoint `serve`: sentences -> translations, {search} search)")
    return {"export": str(output)}


def _serving_model(translator, serve):
    """A Keras model whose `call` is the string-to-string serving function."""
    import keras

    class ServingModel(keras.Model):
        def __init__(self):
            super().__init__(name="translator_serving")
            self.translator = translator
            self.built = True

        def call(self, sentences):
            return serve(sentences)

    return ServingModel()
