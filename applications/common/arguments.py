"""The command-line flags every application shares, per verb.

`applications.cli` adds these to an application's parser before the
application's own `add_arguments(parser, verb)`, which may change their
defaults with `parser.set_defaults(...)`. A default of `None` means "the
application's recipe decides".
"""

import argparse
import datetime
import sys
from pathlib import Path

# Kept here (not imported from the modules that use them) so `--help` does not import keras.
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi-worker")
METHODS = ("full", "frozen", "gradual", "layerwise", "lora")

VERBS = {
    "train": "train a model from scratch and write a run folder",
    "evaluate": "measure a trained model on data; print the metrics as a table",
    "predict": "run a trained or exported model on inputs",
    "finetune": "continue training a trained model on new data; write a new run folder",
    "export": "write a TensorFlow SavedModel of a trained model, taking raw inputs",
}


class ArgumentParser(argparse.ArgumentParser):
    """An `argparse` parser whose errors are one line on stderr (exit status 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bounded(convert, accept, expected):
    """An argparse `type`: `convert(text)`, refused unless `accept(value)`, as "expected ..."."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
        return value

    return parse


positive_int = _bounded(int, lambda value: value >= 1, "a positive whole number")
non_negative_int = _bounded(int, lambda value: value >= 0, "a whole number >= 0")
positive_number = _bounded(float, lambda value: value > 0, "a number > 0")
unit_interval = _bounded(float, lambda value: 0 < value <= 1, "a number in (0, 1]")


def add_common_arguments(parser, verb):
    """Add the shared flags of `verb` to an application's parser."""
    if verb in ("evaluate", "predict", "finetune", "export"):
        # The issue's `finetune --from RUN` is the same flag.
        names = ("--model", "--from") if verb == "finetune" else ("--model",)
        parser.add_argument(
            *names, dest="model", required=True, metavar="RUN",
            help="a run folder written by train or finetune, a .keras file, or (evaluate, predict) an export",
        )
    if verb in ("train", "finetune", "evaluate"):
        parser.add_argument(
            "--data", metavar="PATH|NAME",
            help="a file or folder, or the name of a known data set, found in $KERAS_ATTENTION_DATA "
            "(default ~/.keras/datasets) and downloaded there when missing",
        )
    if verb in ("train", "finetune"):
        parser.add_argument("--output", metavar="RUN",
                            help="the run folder to write (default: runs/APP-TIME)")
        parser.add_argument("--epochs", type=positive_int, help="training epochs (default: the recipe's)")
        parser.add_argument("--seed", type=int, default=0,
                            help="random seed: same seed, same result (default: 0)")
        parser.add_argument("--resume", action="store_true", help="continue an interrupted run of --output")
        parser.add_argument(
            "--precision", choices=PRECISIONS, default="float32",
            help="dtype policy: float32 (default), mixed_float16 (loss scaling), mixed_bfloat16, or auto "
            "(bfloat16 where the hardware runs it natively, float16 on older GPUs, else float32)",
        )
        parser.add_argument(
            "--distribute", choices=DISTRIBUTIONS, default="none",
            help="none (default); mirrored: data-parallel over this machine's GPUs (or logical CPUs); "
            "multi-worker: across machines named in TF_CONFIG; auto: mirrored when there is more than one "
            "device. --batch-size is the global batch",
        )
    if verb == "finetune":
        tuning = parser.add_argument_group("fine-tuning method")
        tuning.add_argument(
            "--method", choices=METHODS, default="full",
            help="full: train every weight (default); frozen: only the head; gradual: the head first, then "
            "one more block from the top each epoch; layerwise: deeper blocks learn at smaller rates "
            "(--layer-decay); lora: low-rank adapters on the attention query and value projections "
            "(--lora-rank), merged into plain weights when saved",
        )
        tuning.add_argument("--layer-decay", type=unit_interval, default=0.75, metavar="FACTOR",
                            help="layerwise: learning-rate ratio between adjacent blocks, in (0, 1] (default: 0.75)")
        tuning.add_argument("--lora-rank", type=positive_int, default=8, metavar="N",
                            help="lora: the rank of the adapters (default: 8)")
        tuning.add_argument(
            "--lora-targets", nargs="+", metavar="NAME",
            help="lora: names or path patterns of the layers to adapt: projections, and embedding tables such "
            "as token_embedding (default: query value)",
        )
    if verb == "export":
        parser.add_argument("--output", metavar="DIR", help="the export folder (default: RUN/export)")
    if verb in ("train", "finetune", "export"):
        parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    if verb != "export":
        parser.add_argument("--batch-size", type=positive_int,
                            help="examples per batch (default: the recipe's)")
    if verb == "evaluate":
        parser.add_argument(
            "--split", choices=("train", "validation", "test", "all"),
            help="which part of the data (default: test where there is one, else all)",
        )
    if verb in ("evaluate", "predict"):
        parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def default_output(application, verb):
    """Where `train`/`finetune` write when `--output` is not given."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = "-finetune" if verb == "finetune" else ""
    return Path("runs") / f"{application}{suffix}-{stamp}"


def run_tool(prog, description, add_arguments, run, argv=None):
    """The `main(argv)` of a tool of `applications.cli.TOOLS`; returns the exit status.

    Parses the flags (`add_arguments(parser)`), calls `run(args)` and prints the
    scalar entries of the dict it returns as a table. A `UserError` prints one
    line, `PROG: error: MESSAGE`, and gives 1; bad flags give 2; Ctrl-C 130.
    """
    from applications.common.errors import UserError
    from applications.common.reporting import print_table

    parser = ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return exit_.code or 0
    try:
        results = run(args)
    except UserError as error:
        print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130
    if results:
        print_table(results)
    return 0
