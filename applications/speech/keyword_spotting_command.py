"""`keras-attention VERB keyword-spotting`: the command module of keyword spotting.

    keras-attention train keyword-spotting                        # FSDD, official split
    keras-attention train keyword-spotting --holdout-speaker lucas --output runs/kws-lucas
    keras-attention train keyword-spotting --data path/to/class_folders
    keras-attention train keyword-spotting --holdout-speaker lucas --extra-data synthetic_digits/
    keras-attention evaluate keyword-spotting --model runs/kws --data fsdd --split test
    keras-attention predict keyword-spotting --model runs/kws clip.wav --attention pictures/
    keras-attention export keyword-spotting --model runs/kws

The protocol is in `applications.common`'s docstring; the recipe is
`applications.speech.keyword_spotting`.
"""

from pathlib import Path

from applications.common.arguments import positive_int

DESCRIPTION = "Keyword-Transformer classifier of spoken words (FSDD, Speech Commands, class folders of WAV files)"
ATTENTION_FILE = "attention.png"


def add_arguments(parser, verb):
    if verb in ("train", "finetune", "evaluate"):
        parser.add_argument(
            "--holdout-speaker", metavar="NAME",
            help="FSDD: test on all recordings of this speaker and train on the others "
            "(default: the official split, recordings 0-4 of every speaker are the test set)",
        )
    if verb in ("train", "finetune"):
        parser.add_argument(
            "--extra-data", metavar="DIR",
            help="more training clips, none of them tested on: a folder of class folders of WAV files "
            "(or FSDD) whose labels are among the data's, such as speech synthesized with "
            "`keras-attention synthesize --class-folders`",
        )
    if verb == "predict":
        parser.add_argument("files", nargs="+", metavar="WAV", help="WAV files (or folders of them) to classify")
        parser.add_argument("--attention", metavar="DIR", help="also write a picture of the attention for each file")
        parser.add_argument("--top", type=positive_int, default=1,
                            help="print the TOP most likely keywords (default: 1)")


def run(verb, args):
    return {"train": _train, "finetune": _train, "evaluate": _evaluate, "predict": _predict,
            "export": _export}[verb](args)


def _class_indices(clips, class_names):
    known = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({clip.label for clip in clips} - set(known))
    if unknown:
        from applications.common.errors import UserError

        raise UserError(
            f"The data has labels the model does not know: {', '.join(unknown)} (the model knows "
            f"{', '.join(class_names)}). Train a new model for new keywords."
        )
    return [known[clip.label] for clip in clips]


def _train(args):
    import numpy as np

    from applications.common import data as common_data
    from applications.common import FineTuning, run_folder, runtime_settings, serving, training, with_new_head
    from applications.speech import data, keyword_spotting as recipe

    training.set_seed(args.seed)
    path, _ = common_data.resolve_data(args.data, data.KNOWN_KEYWORD_DATA, default="fsdd")
    model, class_names = None, None
    config = recipe.settings()
    if args.verb == "finetune":
        model = serving.load_trained_model(args.model)
        config.update(serving.load_settings(serving.model_path(args.model)))
        class_names = _class_names(config, args.model)
        config.update(epochs=recipe.FINETUNE_EPOCHS, learning_rate=recipe.FINETUNE_LEARNING_RATE)
    config["batch_size"] = args.batch_size or config["batch_size"]
    train_waveforms, train_clips = recipe.load_split(path, "train", config, args.holdout_speaker)
    test_waveforms, test_clips = recipe.load_split(path, "test", config, args.holdout_speaker)
    labels = sorted({clip.label for clip in train_clips})
    extra_clips = []
    if args.extra_data:
        extra_waveforms, extra_clips = recipe.load_extra(args.extra_data, labels, config)
        train_waveforms, train_clips = np.concatenate([train_waveforms, extra_waveforms]), train_clips + extra_clips
    if class_names is None:
        class_names = labels
    elif not set(labels) <= set(class_names):
        # New keywords (say, a spotter pretrained on synthetic speech): keep
        # the embedding and the encoder, start a new head for the new labels.
        print(f"The data's labels ({', '.join(labels)}) are not the model's "
              f"({', '.join(class_names)}): fine-tuning with a new head.")
        model, class_names = with_new_head(model, len(labels)), labels
        # A new head learns from nothing: the training schedule, not fine-tuning's gentler one
        # (chosen on a validation speaker, george, with lucas out: 76.6% after 40 epochs at 2e-3,
        # 62.8-64.4% after 15-40 epochs at 5e-4).
        config.update(epochs=recipe.EPOCHS, learning_rate=recipe.LEARNING_RATE)
    epochs = args.epochs or config["epochs"]
    train_labels = _class_indices(train_clips, class_names)
    test_labels = _class_indices(test_clips, class_names)
    print(f"Keyword spotting on {path}: {len(train_clips)} training ({len(extra_clips)} from --extra-data) "
          f"and {len(test_clips)} test clips, "
          f"{len(class_names)} classes" + (f", speaker {args.holdout_speaker} held out." if args.holdout_speaker else "."))

    tuning = FineTuning.from_args(args) if args.verb == "finetune" else None
    with run_folder.RunFolder(args.output, resume=args.resume, overwrite=args.overwrite) as run:
        if args.verb == "finetune":
            serving_model, training_model = model, recipe.training_model_of(model)
        else:
            serving_model, training_model = recipe.build_models(len(class_names), config)
        history = recipe.train(serving_model, training_model, train_waveforms, train_labels, run, config, epochs,
                               seed=args.seed, finetuning=tuning, validation=(test_waveforms, test_labels),
                               quiet=args.quiet)
        results = recipe.evaluate(serving_model, test_waveforms, test_labels, class_names,
                                  [clip.speaker for clip in test_clips], config["batch_size"])
        results = {"test_accuracy": results.pop("accuracy"), "test_examples": results.pop("examples"),
                   "epochs": epochs, "train_seconds": round(history[-1].get("train_seconds", 0.0), 1)
                   if history else 0.0, **results}
        results.update(tuning.metrics if tuning else {})
        (tuning.export(serving_model) if tuning else serving_model).save(run.file(run_folder.MODEL_FILE))
        record = {"application": "keyword-spotting", **config, "epochs": epochs,
                  "class_names": class_names, "data": str(path),
                  "holdout_speaker": args.holdout_speaker, "extra_data": args.extra_data,
                  "extra_clips": len(extra_clips), "seed": args.seed,
                  **runtime_settings()}
        run_folder.write_json(run.file(run_folder.SETTINGS_FILE), record)
        run_folder.write_json(run.file(run_folder.METRICS_FILE), results)
        recipe.plot_attention(serving_model, test_waveforms[0], run.file(ATTENTION_FILE),
                              f"{Path(test_clips[0].path).name}: label {test_clips[0].label}", config)
    print(f"Wrote {run.path}")
    return results


def _evaluate(args):
    from applications.common import data as common_data
    from applications.common import serving
    from applications.common.errors import UserError
    from applications.speech import data, keyword_spotting as recipe

    split = args.split or "test"
    if split == "validation":
        # Keyword data is cut in two only (`data.split_clips`): training watches the test clips
        # as its validation data, so there is no third part to evaluate.
        raise UserError(
            "--split validation: keyword-spotting data has no validation split (training reports "
            "its validation scores on the test split). Use --split test, train or all."
        )
    model = serving.load_model(args.model)
    config = {**recipe.settings(), **serving.load_settings(serving.model_path(args.model))}
    class_names = _class_names(config, args.model)
    path, _ = common_data.resolve_data(args.data or config.get("data"), data.KNOWN_KEYWORD_DATA, default="fsdd")
    # The run's held-out speaker, when evaluating on the data it was trained on (however named).
    trained_on = config.get("data")
    same_data = trained_on is not None and Path(path).resolve() == Path(trained_on).resolve()
    holdout = args.holdout_speaker if args.holdout_speaker is not None else (
        config.get("holdout_speaker") if same_data else None)
    waveforms, clips = recipe.load_split(path, split, config, holdout)
    labels = _class_indices(clips, class_names)
    results = recipe.evaluate(model, waveforms, labels, class_names, [clip.speaker for clip in clips],
                              args.batch_size or config["batch_size"])
    return {"data": str(path), "split": split, **results}


def _class_names(config, model):
    if "class_names" not in config:
        from applications.common.errors import UserError

        raise UserError(f"--model {model}: no settings.json with the class names next to the model; "
                        "give the run folder written by train.")
    return config["class_names"]


def _predict(args):
    from applications.common import serving
    from applications.common.errors import UserError
    from applications.speech import audio, keyword_spotting as recipe

    model = serving.load_model(args.model)
    config = {**recipe.settings(), **serving.load_settings(serving.model_path(args.model))}
    class_names = _class_names(config, args.model)
    files = audio.wav_files(args.files)
    waveforms = recipe.read_clips(files, config)
    probabilities = recipe.predict_probabilities(model, waveforms, args.batch_size or config["batch_size"])
    top = min(args.top, len(class_names))
    predictions = []
    for path, row in zip(files, probabilities):
        order = row.argsort()[::-1][:top]
        guesses = [{"label": class_names[i], "probability": float(row[i])} for i in order]
        predictions.append({"file": str(path), "label": guesses[0]["label"],
                            "probability": guesses[0]["probability"], "top": guesses})
        if not args.quiet:
            print(f"{path}\t" + "\t".join(f"{g['label']} {g['probability']:.3f}" for g in guesses))
    if args.attention:
        if isinstance(model, serving.ExportedModel):
            raise UserError("--attention needs the run folder or .keras file; an export has no attention outputs.")
        folder = Path(args.attention)
        folder.mkdir(parents=True, exist_ok=True)
        for path, waveform, prediction in zip(files, waveforms, predictions):
            picture = folder / f"{path.stem}.attention.png"
            recipe.plot_attention(model, waveform, picture,
                                  f"{path.name}: {prediction['label']} ({prediction['probability']:.2f})", config)
            prediction["attention"] = str(picture)
        print(f"Wrote {len(files)} attention pictures to {folder}")
    return {"files": len(files), "predictions": predictions}


def _export(args):
    from applications.common import serving

    return serving.export_run(args.model, args.output, overwrite=args.overwrite)
