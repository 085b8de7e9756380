"""`keras-attention VERB text-classification`: the command-line protocol.

    keras-attention train text-classification --output runs/sst2          # SST-2
    keras-attention train text-classification --data reviews.csv --text-column review --label-column stars
    keras-attention evaluate text-classification --model runs/sst2 --data sst2 --json metrics.json
    keras-attention predict text-classification --model runs/sst2 "a gripping film" --attention attention.png
    keras-attention finetune text-classification --model runs/sst2 --data more_reviews.tsv --output runs/sst2-ft
    keras-attention pretrain text --corpus sentences.txt.gz --output runs/mlm   # see pretrain_command.py
    keras-attention finetune text-classification --from runs/mlm --data sst2 --output runs/sst2-pt --method lora
    keras-attention export text-classification --model runs/sst2 --output serving/sst2
    keras-attention predict text-classification --model serving/sst2 "a gripping film"
"""

import argparse

from applications.common.arguments import positive_int, positive_number

DESCRIPTION = "Transformer text classifier (TSV/CSV, folders of .txt, SST-2, TREC, SMS spam)"
VERBS = ("train", "evaluate", "predict", "finetune", "export")


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}")
    return value


def add_arguments(parser, verb):
    """The application's own flags for `verb`."""
    if verb in ("train", "finetune", "evaluate"):
        parser.epilog = (
            "--data: sst2, trec, trec-fine, sms-spam (found in $KERAS_ATTENTION_DATA/text), a TSV or "
            "CSV file of text and label, a folder of class folders of .txt files, or a folder of the "
            "published SST-2, TREC or SMS Spam Collection files."
        )
        files = parser.add_argument_group("TSV/CSV files and folders of .txt files")
        files.add_argument("--text-column", metavar="COLUMN",
                           help="the text column: 0-based index or header name (default: detected)")
        files.add_argument("--label-column", metavar="COLUMN",
                           help="the label column: 0-based index or header name (default: detected)")
        files.add_argument("--encoding", help="text encoding of TSV/CSV/.txt files, e.g. latin-1 "
                           "(default: utf-8)")
    if verb in ("train", "finetune"):
        parser.add_argument("--max-examples", type=positive_int, metavar="N",
                            help="train on a stratified sample of N training examples")
    if verb == "train":
        parser.set_defaults(data="sst2")
        model = parser.add_argument_group("model and tokenizer (default: the recipe's settings)")
        model.add_argument("--vocabulary-size", type=positive_int, metavar="N",
                           help="most WordPiece entries learned from the training texts")
        model.add_argument("--sequence-length", type=positive_int, metavar="N",
                           help="pieces kept per text; longer texts are truncated")
        model.add_argument("--hidden-dim", type=positive_int, metavar="N")
        model.add_argument("--num-layers", type=positive_int, metavar="N", help="encoder blocks")
        model.add_argument("--num-heads", type=positive_int, metavar="N")
        model.add_argument("--intermediate-dim", type=positive_int, metavar="N",
                           help="feed-forward width")
        model.add_argument("--dropout", type=_fraction, metavar="RATE")
        model.add_argument("--pooling", choices=("mean", "max", "attention", "cls"))
        model.add_argument("--ensemble-size", type=positive_int, metavar="N",
                           help="independent encoders whose probabilities average")
    if verb == "finetune":
        parser.add_argument("--ensemble-size", type=positive_int, metavar="N",
                            help="from a pretraining run (keras-attention pretrain text): members of the "
                            "new classifier, each starting from the pretrained encoder (default: 8)")
    if verb in ("train", "finetune"):
        training = parser.add_argument_group("training")
        training.add_argument("--learning-rate", type=positive_number, metavar="RATE",
                              help="peak of the schedule")
        training.add_argument("--patience", type=positive_int, metavar="N",
                              help="early stopping: epochs without a better validation accuracy")
    if verb == "predict":
        parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
        parser.add_argument("--file", metavar="FILE", help="also classify each line of FILE")
        parser.add_argument("--attention", metavar="PNG",
                            help="write a picture of the attention over the tokens of the first text")


_SETTINGS_FLAGS = ("vocabulary_size", "sequence_length", "hidden_dim", "num_layers", "num_heads",
                   "intermediate_dim", "dropout", "pooling", "ensemble_size", "learning_rate",
                   "patience")


def run(verb, args):
    """Do `verb`; returns the results the command prints."""
    from applications.text_classification import recipe

    reader_options = {
        key: getattr(args, key)
        for key in ("text_column", "label_column", "encoding")
        if getattr(args, key, None) is not None
    }
    if verb in ("train", "finetune"):
        settings = {
            key: getattr(args, key) for key in _SETTINGS_FLAGS if getattr(args, key, None) is not None
        }
        options = dict(
            epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, resume=args.resume,
            overwrite=args.overwrite, quiet=args.quiet, settings=settings,
            reader_options=reader_options, max_examples=args.max_examples,
        )
        if verb == "train":
            return recipe.train(args.data, args.output, **options)
        from applications.common.finetuning import FineTuning

        return recipe.finetune(args.model, args.data, args.output, tuning=FineTuning.from_args(args),
                               **options)
    if verb == "evaluate":
        return recipe.evaluate(args.model, args.data, args.split, batch_size=args.batch_size,
                               reader_options=reader_options)
    if verb == "predict":
        return recipe.predict(args.model, args.texts, file=args.file, attention=args.attention,
                              batch_size=args.batch_size)
    if verb == "export":
        return recipe.export(args.model, args.output, overwrite=args.overwrite)
    raise ValueError(f"Unknown verb: {verb!r}. Expected one of {VERBS}.")
