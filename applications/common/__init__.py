"""What every application shares, and the contract an application follows.

The command line
----------------
`keras-attention VERB APPLICATION [flags]` (`applications/cli.py`, `main(argv=None)`
returns the exit status). VERB is one of `train`, `evaluate`, `predict`,
`finetune`, `export`. APPLICATION is a key of `applications.cli.APPLICATIONS`
(name -> (module path, one-line description)); adding an application adds one
row there and touches nothing else in common code. The module is imported
only when named. `applications.cli.TOOLS` (name -> (module, help)) holds the
few commands that are not `VERB APPLICATION` (`keras-attention synthesize
...`, `keras-attention pretrain text --corpus FILE... --output RUN`): the
module's `main(argv) -> int` gets the rest of the command line; it is
`arguments.run_tool(PROG, DESCRIPTION, add_arguments, run, argv)`, which prints
a user's mistake as one line, `PROG: error: MESSAGE`.

`pretrain text` (`applications/text_classification/pretrain_command.py`)
trains the text classifier's encoder on unlabeled text (as a masked
language model, or to tell which sentences share a document) and writes a
run folder whose settings.json has `"task": "text-pretraining"`;
`finetune text-classification --from THAT_RUN` starts a new classifier
(new head, `--ensemble-size` members) from its tokenizer, embedding and
encoder blocks.

Exit status: 0 success; 1 a `UserError` (printed as ONE line on stderr:
`keras-attention: error: MESSAGE`, no traceback); 2 bad flags (one line,
`PROG: error: ... (see PROG --help)`); 130 interrupted (Ctrl-C).

The application's command module (`applications/<app>/command.py`)
---------------------------------------------------------------------
- `DESCRIPTION: str`: one line for `--help`.
- `VERBS: tuple[str]`, optional: the verbs it supports (default: all five);
  any other verb is refused with one line.
- `add_arguments(parser, verb)`: adds the application's own flags for `verb`
  (positional inputs of `predict` included). The shared flags below are
  already there; change their defaults with `parser.set_defaults(...)`.
- `run(verb, args) -> dict`: does the work. `args` is the parsed namespace,
  plus `args.verb` and `args.application`; for train/finetune `args.output` is
  always set (default `runs/<app>-<time>`). It returns a JSON-serializable
  dict of results: the CLI prints its scalar entries (numbers, strings) as a
  `metric  value` table, and for `--json FILE` (evaluate, predict) writes the
  whole dict as JSON. Anything else (predictions, per-input lines) the
  application prints itself. It raises `UserError` for a user's mistake.

Shared flags (`arguments.add_common_arguments`), `None` = the recipe's default:
- train:    --data, --output RUN, --epochs, --batch-size, --seed (0), --resume, --overwrite, --quiet,
            --precision {auto,float32,mixed_float16,mixed_bfloat16} (float32),
            --distribute {auto,none,mirrored,multi-worker} (none)
- finetune: --model RUN (alias --from, required), the same as train, and
            --method {full,frozen,gradual,layerwise,lora} (full), --layer-decay (0.75),
            --lora-rank (8)
- evaluate: --model RUN (required), --data, --split {train,validation,test,all}
            (None: test where there is one, else all), --json FILE, --batch-size, --quiet
- predict:  --model RUN|EXPORT (required), --json FILE, --batch-size, --quiet
- export:   --model RUN (required), --output DIR (None: RUN/export), --overwrite, --quiet
The CLI applies `--precision` and `--distribute` itself: it runs `run(verb,
args)` of train/finetune inside `runtime.training_runtime(precision,
distribute)` (dtype policy set, strategy scope entered, both restored after),
so the application builds, loads, compiles and fits in them with no code of
its own. It records `runtime_settings()` (precision, distribute, replicas) in
settings.json. For `finetune --method`, the application creates
`finetuning.FineTuning.from_args(args)` and, on the model it fits:
`prepare(model, head=(names,))` before compile, `optimizer(optimizer)` to
compile with, `callbacks` for fit, `metrics` into metrics.json, and saves
`export(serving_model)` (LoRA merged into plain weights).

Building blocks
---------------
- `UserError` (`ValueError`): a user's mistake; say what was received, what
  was expected, how to fix it.
- Data (`data`): `data_dir()` (`$KERAS_ATTENTION_DATA`, default
  `~/.keras/datasets`); `KnownDataSet(name, folder, files={file: RemoteFile(url,
  sha256)}, description)` declared by each application;
  `resolve_data(spec, known, default=None) -> (path, dataset_or_None)`
  (downloads missing files of a known set); `download(url, path, sha256)`
  (atomic, checksum-verified, any urllib URL incl. `file://`);
  `check_split(split, available)`; `stratified_split(labels, fraction, seed)`;
  `SPLITS`.
- Run folder (`run_folder`): `with RunFolder(args.output, resume=args.resume,
  overwrite=args.overwrite) as run:` write into `run.file(name)`; it works in
  `.RUN.partial` beside RUN and renames on success; on failure nothing is
  left, except the checkpoint of an interrupted training (>= 1 epoch done) for
  `--resume`. File names: `MODEL_FILE` (model.keras, with preprocessing inside:
  takes raw inputs), `METRICS_FILE` (metrics.json), `HISTORY_FILE`
  (history.csv), `SETTINGS_FILE` (settings.json: the settings used and what
  predict needs, e.g. class names), `LEARNING_CURVES_FILE`
  (learning_curves.png); each application adds its attention picture.
  `write_json(path, value)` writes atomically.
- Training (`training`): `set_seed(seed)` (keras seeds + deterministic TF ops);
  `warmup_cosine(peak, total_steps, warmup_steps, final_fraction=0.0)` (a
  serializable keras `CosineDecay`); `fit(model, train_data, run, epochs,
  validation_data=None, callbacks=(), quiet=False, **fit_kwargs) -> history`
  (progress bars, `BackupAndRestore` checkpoint each epoch in the run,
  history.csv with learning rate and seconds per epoch, learning_curves.png).
  Data order must be deterministic for a seed (seeded shuffles). Under
  `--distribute`, `fit` cuts each batch to a multiple of `replicas(model)`, and
  `predict_evenly(model, inputs, batch_size)` pads the inputs to one (Keras's
  JAX trainer shards every batch and fails on one that does not split).
- Serving (`serving`): `load_model(path)` (run folder, .keras with
  `safe_mode=True`, or an exported SavedModel as `ExportedModel` with
  `.predict`); `load_settings(path)`; `export_model(model, path, settings=None,
  input_signature=None, overwrite=False)` (atomic `model.export`, settings.json
  beside it); `model_path(path)`; `load_trained_model(path)` (a `keras.Model`,
  refusing an export); `export_run(path, output=None, overwrite=False)` (a run
  exported with its settings).
- Runtime (`runtime`): `training_runtime(precision, distribute, batch_size=None)`
  (a context manager; a mistake, such as a --batch-size below the replicas, is a
  `UserError`), `runtime_settings()`.
- Fine-tuning (`finetuning`): `FineTuning(method, layer_decay, lora_rank)`,
  `block_groups(model, head)` (the layer groups, top down, that `gradual` and
  `layerwise` use), `with_new_head(model, num_classes)` (a fresh head for
  data with other classes).
- Metrics (`metrics`): `macro_f1(labels, predictions, num_classes)`, the one
  macro-F1 of the classifiers: over the classes the model knows, a class absent
  from the data and never predicted left out (its F1 is 0 / 0).
- Reporting (`reporting`): `print_table(results)`, `read_history(path)`,
  `plot_learning_curves(history, path)`.
"""

import importlib

# Names -> the submodule defining them. Imported on first use (PEP 562), so the
# command line's `--help` does not pay for importing keras.
_EXPORTS = {
    "data": ["SPLITS", "KnownDataSet", "RemoteFile", "check_split", "data_dir", "decode_lines",
             "download", "resolve_data", "sha256_of", "stratified_split"],
    "errors": ["UserError"],
    "finetuning": ["FineTuning", "with_new_head"],
    "metrics": ["macro_f1"],
    "reporting": ["plot_learning_curves", "print_table", "read_history"],
    "runtime": ["runtime_settings", "training_runtime"],
    "run_folder": ["HISTORY_FILE", "LEARNING_CURVES_FILE", "METRICS_FILE", "MODEL_FILE",
                   "SETTINGS_FILE", "RunFolder", "write_json"],
    "serving": ["ExportedModel", "export_model", "export_run", "load_model", "load_settings",
                "load_trained_model", "model_path"],
    "training": ["fit", "predict_evenly", "replicas", "set_seed", "warmup_cosine"],
}
_SOURCE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_SOURCE)


def __getattr__(name):
    if name in _SOURCE:
        return getattr(importlib.import_module(f"applications.common.{_SOURCE[name]}"), name)
    raise AttributeError(f"module 'applications.common' has no attribute {name!r}")


def __dir__():
    return __all__
