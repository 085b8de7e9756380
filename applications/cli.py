"""The `keras-attention` command: `keras-attention VERB APPLICATION [flags]`.

    keras-attention train image-classification                 # digits, a few minutes
    keras-attention train image-classification --data fashion-mnist --output runs/fmnist
    keras-attention evaluate image-classification --model runs/fmnist --json metrics.json
    keras-attention predict image-classification --model runs/fmnist shoe.png
    keras-attention export image-classification --model runs/fmnist --output serving/fmnist
    keras-attention synthesize --text sentences.txt --output corpus/   # a tool, see TOOLS
    keras-attention pretrain text --corpus sentences.txt --output runs/mlm   # a tool

Applications are found through `APPLICATIONS`, a table of name -> (module,
one-line description); `TOOLS` holds the few commands that are not
`VERB APPLICATION` (a module with `main(argv)`). A module is imported only
when named, so `--help` is fast and one broken application does not break the
others. The module's protocol is in `applications.common`'s docstring.
"""

import importlib
import os
import sys
from pathlib import Path

# Quiet TensorFlow's C++ logs (start-up lines, and a spurious "NodeDef mentions
# attribute use_unbounded_threadpool" error line of tf.data in TF 2.21); errors
# still reach the user as Python exceptions. Set before any application imports it.
_USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from applications.common.arguments import (  # noqa: E402
    VERBS,
    ArgumentParser,
    add_common_arguments,
    default_output,
)
from applications.common.errors import UserError  # noqa: E402
from applications.common.reporting import print_table  # noqa: E402
from applications.common.run_folder import write_json  # noqa: E402

PROG = "keras-attention"

APPLICATIONS = {
    "image-classification": (
        "applications.image_classification.command",
        "Vision Transformer image classifier (digits, Fashion-MNIST, folders of images)",
    ),
    "text-classification": (
        "applications.text_classification.command",
        "Transformer text classifier (TSV/CSV, folders of .txt, SST-2, TREC, SMS spam)",
    ),
    "translation": ("applications.translation.command", "Transformer sequence-to-sequence translation"),
    "keyword-spotting": ("applications.speech.keyword_spotting_command", "spoken keyword classification"),
    "speech-to-text": ("applications.speech.speech_to_text_command", "speech recognition with a CTC head"),
}

# Commands that are not `VERB APPLICATION`: name -> (module with `main(argv) -> int`, help).
TOOLS = {
    "synthesize": (
        "applications.speech.synthesize_command",
        "speak a text file with espeak-ng into a speech corpus (WAV files + transcripts.tsv)",
    ),
    "pretrain": (
        "applications.text_classification.pretrain_command",
        "pretrain the text-classification encoder as a masked language model (pretrain text --corpus FILE...)",
    ),
}


def _top_parser():
    parser = ArgumentParser(
        prog=PROG,
        description="Train, evaluate, run and export the keras-attention applications.",
        epilog="Run `keras-attention VERB --help` for the applications, and "
        "`keras-attention VERB APPLICATION --help` for their flags.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=ArgumentParser)
    for verb, help_text in VERBS.items():
        sub = verbs.add_parser(verb, help=help_text, description=f"{PROG} {verb}: {help_text}.",
                               epilog=_application_list())
        sub.add_argument("application", metavar="APPLICATION", choices=list(APPLICATIONS),
                         help="one of: " + ", ".join(APPLICATIONS))
    for tool, (_, help_text) in TOOLS.items():
        verbs.add_parser(tool, help=help_text, add_help=False)
    return parser


def _application_list():
    lines = ["applications:"] + [f"  {name:<22}{text}" for name, (_, text) in APPLICATIONS.items()]
    return "\n".join(lines)


def load_application(name):
    """Import the command module of application `name`."""
    module_name, _ = APPLICATIONS[name]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UserError(f"The application {name!r} is not available in this installation yet.") from None
        raise


def application_parser(verb, name, module):
    """The full parser of `keras-attention VERB NAME`: shared flags, then the application's."""
    description = getattr(module, "DESCRIPTION", APPLICATIONS[name][1])
    parser = ArgumentParser(prog=f"{PROG} {verb} {name}", description=f"{VERBS[verb]}: {description}.")
    add_common_arguments(parser, verb)
    module.add_arguments(parser, verb)
    return parser


def _import_keras_quietly():
    """Import keras with the C++ start-up log lines of TensorFlow silenced.

    Those lines (oneDNN, CUDA, CPU features) are written to file descriptor 2
    before absl logging is initialized, so no environment variable silences
    them; the descriptor is pointed at /dev/null for the import only. Set
    TF_CPP_MIN_LOG_LEVEL=0 to see them.
    """
    if _USER_LOG_LEVEL == "0" or "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_json_path(path):
    """`--json FILE` must name a file in an existing folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"--json {path}: is a folder. Give a file name, such as {path / 'metrics.json'}.")
    if not path.parent.is_dir():
        raise UserError(f"--json {path}: the folder {path.parent} does not exist. Create it first.")


def check_application(model, verb, name):
    """`--model` must be a run of application `name` (runs record theirs in settings.json)."""
    from applications.common.serving import load_settings

    if not Path(model).expanduser().exists():
        return  # The application says what is missing.
    recorded = load_settings(model).get("application")
    if recorded is not None and recorded != name:
        raise UserError(
            f"--model {model} is a run of {recorded}, not of {name}. Use: keras-attention {verb} "
            f"{recorded} --model {model} ..."
        )


def _same_folder(output, model):
    model = Path(model).expanduser()
    folder = model.parent if model.is_file() else model
    return Path(output).expanduser().resolve() == folder.resolve()


def _run_tool(name, argv):
    _import_keras_quietly()
    try:
        module = importlib.import_module(TOOLS[name][0])
        return module.main(argv) or 0
    except UserError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1


def main(argv=None):
    """Run the command; returns the exit status (0 ok, 1 user error, 2 bad flags, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # Epoch lines reach logs as they happen.
    if argv and argv[0] in TOOLS:
        return _run_tool(argv[0], argv[1:])
    if argv and argv[0] == "translate":
        # `keras-attention translate --model RUN "..."` is `predict translation`.
        argv = ["predict", "translation", *argv[1:]]
    top = _top_parser()
    # Stage 1: the verb and the application (flags after them belong to the application).
    head = argv[:2] if len(argv) >= 2 and not argv[1].startswith("-") else argv
    try:
        chosen = top.parse_args(head)
    except SystemExit as exit_:
        return exit_.code or 0
    if chosen.verb is None:
        top.print_help()
        return 2
    verb, name = chosen.verb, chosen.application
    try:
        module = load_application(name)
        supported = getattr(module, "VERBS", tuple(VERBS))
        if verb not in supported:
            raise UserError(f"{name} does not support {verb!r} (it supports: {', '.join(supported)}).")
        # Stage 2: the application's flags.
        try:
            args = application_parser(verb, name, module).parse_args(argv[2:])
        except SystemExit as exit_:
            return exit_.code or 0
        args.verb, args.application = verb, name
        if verb in ("train", "finetune") and args.output is None:
            args.output = str(default_output(name, verb))
        if getattr(args, "json", None):
            check_json_path(args.json)  # Before the work, not after it.
        _import_keras_quietly()
        if getattr(args, "model", None):
            check_application(args.model, verb, name)
        if verb == "export" and args.output and _same_folder(args.output, args.model):
            raise UserError(f"--output {args.output} is the run being exported. Choose another --output.")
        if verb in ("train", "finetune"):
            from applications.common.runtime import training_runtime

            with training_runtime(args.precision, args.distribute, args.batch_size):
                results = module.run(verb, args) or {}
        else:
            results = module.run(verb, args) or {}
        print_table(results)
        if getattr(args, "json", None):
            try:
                write_json(args.json, results)
            except OSError as error:
                raise UserError(f"--json {args.json}: could not write it ({error.strerror}).") from None
            print(f"Wrote {args.json}")
        return 0
    except UserError as error:
        message = " ".join(str(error).split())  # One line, whatever the message.
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
