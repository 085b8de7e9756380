"""`keras-attention pretrain text`: pretraining of the text encoder on unlabeled text.

    keras-attention pretrain text --corpus sentences.txt more.txt.gz --output runs/mlm
    keras-attention pretrain text --objective same-document --corpus reviews.txt --from runs/mlm \
        --output runs/mlm-doc
    keras-attention finetune text-classification --from runs/mlm-doc --data sst2 --output runs/sst2-pt

The corpus is plain or gzip UTF-8 text, one sentence a line, a blank line between documents.
The run folder holds the encoder (`model.keras`, strings to hidden states, tokenizer inside),
the vocabulary, the history and the objective's held-out accuracy. `pretrain` is not `VERB
APPLICATION`: `cli.py` hands `keras-attention pretrain ...` to `main(argv)` here
(`applications.cli.TOOLS`). See `pretraining.py`.
"""

import sys

from applications.common.arguments import positive_int, positive_number, run_tool

PROG = "keras-attention pretrain"
DESCRIPTION = ("pretrain the text-classification encoder on unlabeled text: as a masked language model, or "
               "to tell which sentences share a document")
_SETTINGS_FLAGS = ("objective", "vocabulary_size", "sequence_length", "hidden_dim", "num_layers", "num_heads",
                   "intermediate_dim", "learning_rate")


def add_arguments(parser):
    parser.add_argument("kind", choices=("text",),
                        help="what to pretrain: text (the text-classification encoder)")
    parser.add_argument("--corpus", nargs="+", required=True, metavar="FILE",
                        help="plain or .gz UTF-8 text files, one sentence a line, a blank line between "
                        "documents")
    parser.add_argument("--objective", choices=("masked-lm", "same-document"),
                        help="masked-lm: recover masked pieces of every sentence (default); same-document: "
                        "pick, among a batch, the sentence from the same document (documents of 2 or more "
                        "sentences)")
    parser.add_argument("--output", required=True, metavar="RUN", help="the run folder to write")
    parser.add_argument("--from", dest="from_run", metavar="RUN",
                        help="continue the encoder of this pretraining run (its vocabulary, sizes and weights) on "
                        "--corpus: adaptive pretraining on a task's own texts")
    parser.add_argument("--epochs", type=positive_int,
                        help="training epochs (default: 5 for masked-lm; 25 for same-document, one pair of "
                        "sentences from each document an epoch)")
    parser.add_argument("--batch-size", type=positive_int,
                        help="sentences (same-document: documents) per batch (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--max-sentences", type=positive_int, metavar="N",
                        help="masked-lm: pretrain on a seeded sample of N sentences")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of --output")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    model = parser.add_argument_group("encoder and tokenizer (default: the text classifier's)")
    model.add_argument("--vocabulary-size", type=positive_int, metavar="N")
    model.add_argument("--sequence-length", type=positive_int, metavar="N")
    model.add_argument("--hidden-dim", type=positive_int, metavar="N")
    model.add_argument("--num-layers", type=positive_int, metavar="N")
    model.add_argument("--num-heads", type=positive_int, metavar="N")
    model.add_argument("--intermediate-dim", type=positive_int, metavar="N")
    model.add_argument("--learning-rate", type=positive_number, metavar="RATE",
                       help="peak of the schedule (default: 1e-3)")


def run(args):
    from applications.text_classification import pretraining

    settings = {key: getattr(args, key) for key in _SETTINGS_FLAGS if getattr(args, key) is not None}
    return pretraining.pretrain(
        args.corpus, args.output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, settings=settings,
        max_sentences=args.max_sentences, from_run=args.from_run,
    )


def main(argv=None):
    """Run `keras-attention pretrain`; returns the exit status (0, 1 user error, 2 bad flags)."""
    return run_tool(PROG, DESCRIPTION, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
