"""`keras-attention VERB translation`: the command-line protocol.

    keras-attention train translation                                  # Multi30k en->de, Transformer
    keras-attention train translation --architecture rnn-attention --output runs/rnn
    keras-attention train translation --data spa-eng --source en --target es --output runs/spa
    keras-attention evaluate translation --model runs/en-de --search beam --json scores.json
    keras-attention predict translation --model runs/en-de "A man rides a bike."
    keras-attention predict translation --model runs/en-de --input news.en --output news.de
    keras-attention finetune translation --model runs/en-de --data my-corpus --epochs 3
    keras-attention export translation --model runs/en-de --output serving/en-de

`keras-attention translate --model RUN ...` is `predict translation`.
"""

import argparse

from applications.common.arguments import non_negative_int, positive_int, positive_number

DESCRIPTION = "Transformer or RNN-with-attention translation (Multi30k, Tatoeba, line-aligned files, TSV)"
VERBS = ("train", "evaluate", "predict", "finetune", "export")


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}")
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None


def _add_search_arguments(parser):
    search = parser.add_argument_group("decoding")
    search.add_argument("--search", choices=("greedy", "beam"), default="greedy",
                        help="greedy decoding or beam search (default: greedy)")
    search.add_argument("--beam-width", type=positive_int, default=4, help="beams of --search beam (default: 4)")
    search.add_argument("--length-penalty", type=_number, default=0.6,
                        help="alpha of the beam search's length penalty; larger favours longer outputs "
                        "(default: 0.6)")


def add_arguments(parser, verb):
    """The application's own flags for `verb`."""
    if verb in ("train", "finetune", "evaluate"):
        parser.epilog = (
            "--data: multi30k (default), spa-eng, a folder of {split}.{language}[.gz] files, PREFIX of "
            "PREFIX.{source}/PREFIX.{target}, SOURCE_FILE,TARGET_FILE, a .tsv of pairs, or a Tatoeba .zip."
        )
        languages = parser.add_argument_group("languages")
        default = "(default: en)" if verb == "train" else "(default: the model's)"
        languages.add_argument("--source", metavar="LANG", help=f"source language code {default}")
        languages.add_argument("--target", metavar="LANG",
                               help=f"target language code {'(default: de)' if verb == 'train' else default}")
        parser.add_argument("--max-examples", type=positive_int, metavar="N",
                            help="use the first N pairs only (quick checks)")
    if verb in ("train", "finetune"):
        parser.add_argument("--max-minutes", type=positive_number, metavar="M",
                            help="stop training after M minutes, then evaluate and save")
        parser.add_argument("--evaluate-examples", type=positive_int, metavar="N",
                            help="score the first N test pairs only at the end (default: all)")
        training = parser.add_argument_group("training")
        training.add_argument("--learning-rate", type=positive_number, help="peak of the warmup schedule")
        training.add_argument("--warmup-steps", type=non_negative_int)
        training.add_argument("--label-smoothing", type=_fraction)
    if verb == "train":
        training.add_argument("--decay", choices=("cosine", "linear", "inverse_sqrt", "constant"),
                              help="learning-rate decay after warmup (default: cosine)")
        model = parser.add_argument_group("model (default: the architecture's recipe)")
        model.add_argument("--architecture", choices=("transformer", "rnn-attention"), default="transformer")
        model.add_argument("--vocabulary-size", type=positive_int, help="SentencePiece pieces (default: 8000)")
        model.add_argument("--shared-vocabulary", action=argparse.BooleanOptionalAction,
                           help="one vocabulary for both languages (default: yes)")
        model.add_argument("--sequence-length", type=positive_int, help="longest source/target in pieces (64)")
        model.add_argument("--hidden-dim", type=positive_int, help="Transformer width")
        model.add_argument("--num-layers", type=positive_int, help="Transformer encoder and decoder blocks")
        model.add_argument("--num-heads", type=positive_int)
        model.add_argument("--intermediate-dim", type=positive_int)
        model.add_argument("--embedding-dim", type=positive_int, help="RNN embedding size")
        model.add_argument("--units", type=positive_int, help="RNN decoder units")
        model.add_argument("--attention", choices=("bahdanau", "luong"), help="RNN attention (default: bahdanau)")
        model.add_argument("--dropout", type=_fraction)
    if verb == "evaluate":
        _add_search_arguments(parser)
        parser.add_argument("--output", metavar="DIR",
                            help="where to write the hypotheses and scores.json (default: RUN/evaluation/SPLIT-SEARCH)")
    if verb == "predict":
        parser.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
        parser.add_argument("--input", metavar="FILE", help="translate FILE, one sentence a line (plain or gzip)")
        parser.add_argument("--output", metavar="FILE", help="write the translations to FILE, one a line")
        parser.add_argument("--alignment", metavar="PNG",
                            help="draw the cross-attention of the first sentence to PNG")
        _add_search_arguments(parser)
    if verb == "export":
        _add_search_arguments(parser)


_TRANSFORMER_FLAGS = ("hidden_dim", "num_layers", "num_heads", "intermediate_dim", "dropout")
_RNN_FLAGS = ("embedding_dim", "units", "attention", "dropout")


def run(verb, args):
    """Do `verb`; returns the results the command prints."""
    from applications.common import FineTuning
    from applications.translation import evaluation, recipe

    if verb == "train":
        flags = _TRANSFORMER_FLAGS if args.architecture == "transformer" else _RNN_FLAGS
        ignored = [f"--{k.replace('_', '-')}" for k in set(_TRANSFORMER_FLAGS + _RNN_FLAGS) - set(flags)
                   if getattr(args, k) is not None]
        if ignored:
            from applications.common import UserError

            raise UserError(f"{', '.join(sorted(ignored))} do not apply to --architecture {args.architecture}.")
        model = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
        return recipe.train(
            args.data, args.output, source=args.source or "en", target=args.target or "de",
            architecture=args.architecture, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
            resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
            vocabulary_size=args.vocabulary_size, shared_vocabulary=args.shared_vocabulary,
            sequence_length=args.sequence_length, learning_rate=args.learning_rate,
            warmup_steps=args.warmup_steps, decay=args.decay, label_smoothing=args.label_smoothing,
            max_minutes=args.max_minutes, max_examples=args.max_examples,
            evaluate_examples=args.evaluate_examples, model=model,
        )
    if verb == "finetune":
        return recipe.finetune(
            args.model, args.data, args.output, source=args.source, target=args.target, epochs=args.epochs,
            batch_size=args.batch_size, seed=args.seed, resume=args.resume, overwrite=args.overwrite,
            quiet=args.quiet, learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
            label_smoothing=args.label_smoothing, max_minutes=args.max_minutes, max_examples=args.max_examples,
            evaluate_examples=args.evaluate_examples, finetuning=FineTuning.from_args(args),
        )
    if verb == "evaluate":
        return evaluation.evaluate(
            args.model, args.data, args.split, source=args.source, target=args.target, search=args.search,
            beam_width=args.beam_width, length_penalty=args.length_penalty, batch_size=args.batch_size or 64,
            output=args.output, max_examples=args.max_examples,
        )
    if verb == "predict":
        return evaluation.translate(
            args.model, args.sentences, input_file=args.input, output_file=args.output, search=args.search,
            beam_width=args.beam_width, length_penalty=args.length_penalty, batch_size=args.batch_size or 64,
            alignment=args.alignment,
        )
    if verb == "export":
        return evaluation.export(args.model, args.output, search=args.search, beam_width=args.beam_width,
                                 length_penalty=args.length_penalty, overwrite=args.overwrite)
    raise ValueError(f"Unknown verb: {verb!r}. Expected one of {VERBS}.")
