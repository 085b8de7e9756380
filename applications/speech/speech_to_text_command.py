"""`keras-attention VERB speech-to-text`: the command module of speech to text.

    keras-attention train speech-to-text                          # espeak-ng digits + FSDD, ~25 CPU-minutes
    keras-attention train speech-to-text --data my_corpus --fsdd-sequences 0
    keras-attention evaluate speech-to-text --model runs/stt --data fsdd --holdout-speaker theo
    keras-attention predict speech-to-text --model runs/stt call.wav --decoder beam
    keras-attention export speech-to-text --model runs/stt

`--data` is a corpus folder (`transcripts.tsv` of `file<TAB>text[<TAB>speaker]`
lines beside the WAV files, optionally as `train/` and `test/` parts), as
`keras-attention synthesize` writes; the default, `espeak-digits`, is
synthesized into the data directory on first use. The protocol is in
`applications.common`'s docstring; the recipe is
`applications.speech.speech_to_text`.
"""

from pathlib import Path

DESCRIPTION = "attention encoder + CTC speech recognizer (espeak-ng corpora, FSDD digit sequences, WAV + transcripts)"
ATTENTION_FILE = "attention.png"
DECODERS = {"greedy": "greedy", "beam": "beam_search"}


def add_arguments(parser, verb):
    if verb in ("train", "finetune"):
        parser.add_argument(
            "--fsdd-sequences", type=int, metavar="N",
            help="add N digit sequences joined from real FSDD recordings of the training speakers "
            "(default: the recipe's; 0 trains on --data only)",
        )
    if verb in ("train", "finetune", "evaluate"):
        parser.add_argument(
            "--holdout-speaker", metavar="NAME",
            help="the FSDD speaker kept out of training, whose joined recordings are a test set "
            "(default: the recipe's, or the model's)",
        )
    if verb in ("evaluate", "predict"):
        parser.add_argument("--decoder", choices=("greedy", "beam", "both"), default=None,
                            help="CTC decoding (default: both for evaluate, greedy for predict)")
    if verb == "predict":
        parser.add_argument("files", nargs="+", metavar="WAV", help="WAV files (or folders of them) to transcribe")
        parser.add_argument("--attention", metavar="DIR", help="also write a picture of the attention for each file")


def run(verb, args):
    return {"train": _train, "finetune": _train, "evaluate": _evaluate, "predict": _predict,
            "export": _export}[verb](args)


def _corpus(spec, config):
    """The corpus folder of `--data` (the default one is synthesized on first use)."""
    from applications.common import data as common_data
    from applications.speech import data, speech_to_text as recipe

    path, dataset = common_data.resolve_data(spec, [data.ESPEAK_DIGITS], default=data.ESPEAK_DIGITS.name)
    if dataset is not None:
        recipe.default_corpus(path, config)
    return path


def _fsdd_path():
    from applications.common import data as common_data
    from applications.speech import data

    path, _ = common_data.resolve_data("fsdd", data.KNOWN_KEYWORD_DATA)
    return path


def _train(args):
    from applications.common import FineTuning, run_folder, runtime_settings, serving, training
    from applications.common.errors import UserError
    from applications.speech import data, speech_to_text as recipe

    training.set_seed(args.seed)
    config = recipe.settings()
    model = None
    if args.verb == "finetune":
        model = serving.load_trained_model(args.model)
        config.update(serving.load_settings(serving.model_path(args.model)))
        config.update(epochs=recipe.FINETUNE_EPOCHS, learning_rate=recipe.FINETUNE_LEARNING_RATE)
    config["batch_size"] = args.batch_size or config["batch_size"]
    if args.holdout_speaker is not None:
        config["holdout_speaker"] = args.holdout_speaker
    if args.fsdd_sequences is not None:
        if args.fsdd_sequences < 0:
            raise UserError(f"--fsdd-sequences must be 0 or more; received {args.fsdd_sequences}.")
        config["fsdd_train_sequences"] = args.fsdd_sequences
    epochs = args.epochs or config["epochs"]

    corpus = _corpus(args.data, config)
    train_set = recipe.Utterances.from_clips(recipe.corpus_split(corpus, "train", config), config)
    test_sets = {"corpus": recipe.Utterances.from_clips(recipe.corpus_split(corpus, "test", config), config)}
    if config["fsdd_train_sequences"] > 0:
        fsdd = _fsdd_path()
        speakers = {clip.speaker for clip in data.fsdd_clips(fsdd)}
        holdout = config["holdout_speaker"]
        if holdout not in speakers:
            raise UserError(f"--holdout-speaker {holdout!r} is not in {fsdd} (speakers: {', '.join(sorted(speakers))}).")
        train_set = train_set + recipe.fsdd_sequences(fsdd, speakers - {holdout}, config["fsdd_train_sequences"],
                                                      config, seed=args.seed)
        test_sets["fsdd"] = recipe.fsdd_sequences(fsdd, {holdout}, config["fsdd_test_sequences"], config, seed=10_000)
    train_set = recipe.usable(train_set, config, args.quiet)
    test_sets = {name: recipe.usable(s, config, args.quiet) for name, s in test_sets.items()}
    print(f"Speech to text: {len(train_set)} training clips from {corpus}"
          + (f" and FSDD (speaker {config['holdout_speaker']} held out)" if "fsdd" in test_sets else "")
          + "; test sets: " + ", ".join(f"{name} {len(s)}" for name, s in test_sets.items()) + ".")

    tuning = FineTuning.from_args(args) if args.verb == "finetune" else None
    with run_folder.RunFolder(args.output, resume=args.resume, overwrite=args.overwrite) as run:
        if model is not None:
            serving_model, training_model = model, recipe.training_model_of(model, config)
        else:
            serving_model, training_model = recipe.build_models(config)
        history = recipe.train(serving_model, training_model, train_set, run, config, epochs, seed=args.seed,
                               validation=test_sets["corpus"], quiet=args.quiet)
        results = {"epochs": epochs, "train_seconds": round(history[-1].get("train_seconds", 0.0), 1) if history else 0.0}
        for name, test_set in test_sets.items():
            scores = recipe.evaluate(serving_model, test_set, config)
            results.update({f"{name}_{key}": value for key, value in scores.items()})
        results.update(tuning.metrics if tuning else {})
        (tuning.export(serving_model) if tuning else serving_model).save(run.file(run_folder.MODEL_FILE))
        record = {"application": "speech-to-text", **config, "epochs": epochs, "data": str(corpus),
                  "seed": args.seed,
                  **runtime_settings()}
        run_folder.write_json(run.file(run_folder.SETTINGS_FILE), record)
        run_folder.write_json(run.file(run_folder.METRICS_FILE), results)
        example = test_sets.get("fsdd", test_sets["corpus"])
        recipe.plot_attention(serving_model, example.waveforms[0], run.file(ATTENTION_FILE),
                              f"reference: {example.texts[0]}", config)
    print(f"Wrote {run.path}")
    return results


def _evaluate(args):
    from applications.common import serving
    from applications.common.errors import UserError
    from applications.speech import data, speech_to_text as recipe

    split = args.split or "test"
    if split == "validation":
        # As keyword spotting: a corpus is cut into train and test only.
        raise UserError(
            "--split validation: speech-to-text data has no validation split (training reports "
            "its validation scores on the test split). Use --split test, train or all."
        )
    model = serving.load_model(args.model)
    config = {**recipe.settings(), **serving.load_settings(serving.model_path(args.model))}
    decoders = ("greedy", "beam") if args.decoder in (None, "both") else (args.decoder,)
    spec = args.data or config.get("data") or data.ESPEAK_DIGITS.name
    # A corpus with transcripts is read as one, even if its clips are named as FSDD's (as train does).
    transcribed = any((Path(spec) / part / data.TRANSCRIPT_FILE).exists() for part in ("", "train"))
    if spec == data.FSDD.name or (data.is_fsdd(Path(spec)) and not transcribed):
        path = _fsdd_path() if spec == data.FSDD.name else Path(spec)
        speaker = args.holdout_speaker or config["holdout_speaker"]
        utterances = recipe.fsdd_sequences(path, {speaker}, config["fsdd_test_sequences"], config, seed=10_000)
        description = f"{len(utterances)} sequences joined from FSDD speaker {speaker}"
    else:
        path = _corpus(spec, config)
        utterances = recipe.Utterances.from_clips(recipe.corpus_split(path, split, config), config)
        description = f"{path} ({split})"
    utterances = recipe.usable(utterances, config, args.quiet)
    results = recipe.evaluate(model, utterances, config, [DECODERS[d] for d in decoders],
                              args.batch_size or 16)
    if not args.quiet:
        for name in decoders:
            for sample in results[f"samples_{name}"]:
                print(f"{name:>6}  ref: {sample['reference']}\n        hyp: {sample['hypothesis']}")
    return {"data": description, **results}


def _predict(args):
    from applications.common import serving
    from applications.common.errors import UserError
    from applications.speech import audio, speech_to_text as recipe

    model = serving.load_model(args.model)
    config = {**recipe.settings(), **serving.load_settings(serving.model_path(args.model))}
    if "vocabulary" not in serving.load_settings(serving.model_path(args.model)):
        raise UserError(f"--model {args.model}: no settings.json beside the model; give the run folder written by train.")
    strategy = DECODERS["beam" if args.decoder == "beam" else "greedy"]
    predictions = []
    for path in audio.wav_files(args.files):
        text = recipe.transcribe_file(model, path, config, strategy)
        predictions.append({"file": str(path), "text": text})
        if not args.quiet:
            print(f"{path}\t{text}")
    if args.attention:
        if isinstance(model, serving.ExportedModel):
            raise UserError("--attention needs the run folder or .keras file; an export has no attention outputs.")
        folder = Path(args.attention)
        folder.mkdir(parents=True, exist_ok=True)
        for prediction in predictions:
            path = Path(prediction["file"])
            waveform, _ = audio.read_wav(path, config["sample_rate"], max_seconds=None)
            waveform = recipe.split_long(waveform, config)[0]  # The first 8 s of a long file.
            picture = folder / f"{path.stem}.attention.png"
            recipe.plot_attention(model, waveform, picture, f"{path.name}: {prediction['text']}", config)
            prediction["attention"] = str(picture)
        print(f"Wrote {len(predictions)} attention pictures to {folder}")
    return {"files": len(predictions), "predictions": predictions}


def _export(args):
    from applications.common import serving

    return serving.export_run(args.model, args.output, overwrite=args.overwrite)
