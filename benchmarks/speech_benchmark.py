"""Run the default speech recipes and write `benchmarks/results/speech.md`.

    python benchmarks/speech_benchmark.py                          # all three tasks
    python benchmarks/speech_benchmark.py --task kws
    python benchmarks/speech_benchmark.py --task kws-holdout --holdout-speaker jackson
    python benchmarks/speech_benchmark.py --task stt --epochs 5     # a shortened check
    python benchmarks/speech_benchmark.py --task kws-holdout,kws-pretrained   # issue 7's speech target
    python benchmarks/speech_benchmark.py --task kws-holdout-synthetic --seeds 0,1,2
    python benchmarks/speech_benchmark.py --task kws --seeds 0,1,2   # the mean of three seeds

Tasks, each exactly what the command line runs (with `--seed`, 0 unless `--seeds` says more;
with several seeds a row gives each seed's result and their mean, and the target is checked
on the mean):
- `kws`: `keras-attention train keyword-spotting --data fsdd`: FSDD, official split
  (recordings 0-4 of every speaker are the test set); accuracy on the test set.
- `kws-holdout`: the same with `--holdout-speaker` (default `lucas`): trained on the other
  speakers, accuracy on every recording of the held-out one.
- `kws-holdout-synthetic`: `keras-attention synthesize --text digits.txt --class-folders` (the
  lines "0" to "9", spoken as digit words by espeak-ng's training voices, `--mixed-copies`
  clips of each, in class folders named as FSDD's labels), then `kws-holdout` with
  `--extra-data` that corpus: the synthetic clips join the training split.
- `kws-pretrained`: `keras-attention synthesize --digit-words --class-folders` (the ten digit
  words spoken by espeak-ng's training voices, `--synthetic-copies` clips of each), `train
  keyword-spotting` on them (the default recipe), then `finetune keyword-spotting --from` that run
  `--data fsdd --holdout-speaker` (a new head for FSDD's labels "0"-"9", the fine-tuning recipe);
  accuracy on the held-out speaker against `kws-holdout` (the same speaker, from scratch).
- `stt`: `keras-attention train speech-to-text`: espeak-ng digit sequences (3-7 digits)
  plus joined FSDD recordings of the training speakers; CER and WER (greedy and beam) on
  voices never used in training and on sequences joined from the held-out FSDD speaker.
  The espeak-ng corpus is synthesized once into `--corpus` (default: a folder in the
  temporary directory) and reused.

Results are rows of a Markdown table, with the wall and CPU time and the load average of
the machine (on a shared machine wall time stretches beyond what the recipe needs). Runs
with `--epochs` are marked as shortened and never count as meeting a target. The data
directory defaults to `../shared/data` beside the checkout (set `KERAS_ATTENTION_DATA`).
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_ATTENTION_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = ROOT / "benchmarks" / "results" / "speech.md"
ROWS = ROOT / "benchmarks" / "results" / "speech.json"  # A task's run replaces only its row.
TASKS = ("kws", "kws-holdout", "kws-holdout-synthetic", "kws-pretrained", "stt")
TARGETS = {
    "kws": "accuracy >= 98.5%",
    "kws-holdout": "accuracy >= 90% on the held-out speaker",
    "kws-holdout-synthetic": "accuracy >= 90% on the held-out speaker",
    "kws-pretrained": "beats kws-holdout (from scratch) on the held-out speaker",
    "stt": "CER <= 3% (unseen voices), <= 15% (unseen FSDD speaker)",
}


def run_command(module_name, verb, application, argv):
    """Parse `argv` as `keras-attention VERB APPLICATION` would and run it in-process."""
    from applications import cli

    module = importlib.import_module(module_name)
    args = cli.application_parser(verb, application, module).parse_args(argv)
    args.verb, args.application = verb, application
    return module.run(verb, args)


def run_task(task, epochs, holdout_speaker, corpus, keep, synthetic_copies, mixed_copies, seed=0):
    output = Path(keep or tempfile.mkdtemp()) / (task if seed == 0 else f"{task}-seed{seed}")
    shutil.rmtree(output, ignore_errors=True)
    common = ["--output", str(output), "--quiet", "--seed", str(seed)] + (["--epochs", str(epochs)] if epochs else [])
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    if task == "stt":
        from applications.speech import speech_to_text

        speech_to_text.default_corpus(corpus, speech_to_text.settings())
        metrics = run_command("applications.speech.speech_to_text_command", "train", "speech-to-text",
                              ["--data", str(corpus), "--holdout-speaker", holdout_speaker, *common])
    elif task == "kws-pretrained":
        from applications.speech import synthesize_command
        from applications.speech.data import DIGIT_WORDS

        words = output / "synthetic-words"
        if synthesize_command.main(["--digit-words", "--class-folders", "--copies", str(synthetic_copies),
                                    "--output", str(words)]) != 0:
            raise SystemExit("synthesize failed")
        pretrained = run_command("applications.speech.keyword_spotting_command", "train", "keyword-spotting",
                                 ["--data", str(words), *common, "--output", str(output / "pretrained")])
        metrics = run_command("applications.speech.keyword_spotting_command", "finetune", "keyword-spotting",
                              ["--from", str(output / "pretrained"), "--data", "fsdd", "--holdout-speaker",
                               holdout_speaker, *common, "--output", str(output / "finetuned")])
        metrics.update(pretrain_epochs=pretrained["epochs"], pretrain_clips=len(DIGIT_WORDS) * synthetic_copies,
                       pretrain_accuracy=pretrained["test_accuracy"])
    elif task == "kws-holdout-synthetic":
        from applications.speech import synthesize_command

        digits = output / "digits.txt"
        digits.parent.mkdir(parents=True, exist_ok=True)
        digits.write_text("".join(f"{d}\n" for d in range(10)))
        if synthesize_command.main(["--text", str(digits), "--class-folders", "--copies", str(mixed_copies),
                                    "--output", str(output / "synthetic-digits")]) != 0:
            raise SystemExit("synthesize failed")
        metrics = run_command("applications.speech.keyword_spotting_command", "train", "keyword-spotting",
                              ["--data", "fsdd", "--holdout-speaker", holdout_speaker, "--extra-data",
                               str(output / "synthetic-digits"), *common, "--output", str(output / "run")])
        metrics.update(extra_clips=json.loads((output / "run" / "settings.json").read_text())["extra_clips"])
    else:
        extra = ["--holdout-speaker", holdout_speaker] if task == "kws-holdout" else []
        metrics = run_command("applications.speech.keyword_spotting_command", "train", "keyword-spotting",
                              ["--data", "fsdd", *extra, *common])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not keep:
        shutil.rmtree(output.parent, ignore_errors=True)
    import keras

    keras.backend.clear_session()
    return {"task": task, "seed": seed, "metrics": metrics, "wall": wall, "cpu": cpu, "shortened": bool(epochs),
            "load": (load_before + os.getloadavg()[0]) / 2, "holdout_speaker": holdout_speaker}


def merged(results):
    """One task's results over seeds, as one result.

    With several seeds, the metrics are each seed's whole metrics under `"seeds"`, the
    mean test accuracy and training time of a run, and the settings every run shares (the
    first run's other numbers and strings); wall and CPU time are the total of the runs.
    """
    first = results[0]
    if len(results) == 1:
        return first
    shared = {key: value for key, value in first["metrics"].items() if not isinstance(value, (dict, list))}
    metrics = {**shared, "seeds": {str(r["seed"]): r["metrics"] for r in results},
               **{key: float(np.mean([r["metrics"][key] for r in results]))
                  for key in ("test_accuracy", "train_seconds")}}
    return {**first, "metrics": metrics, "wall": sum(r["wall"] for r in results),
            "cpu": sum(r["cpu"] for r in results), "load": float(np.mean([r["load"] for r in results]))}


def table_row(result, rows):
    """The result's Markdown row; `rows` (task -> {"row", "metrics"}) gives kws-pretrained its reference."""
    task, m = result["task"], result["metrics"]
    if task == "stt":
        score = (f"voices: CER {m['corpus_cer_greedy']:.2%} / {m['corpus_cer_beam']:.2%}, "
                 f"WER {m['corpus_wer_greedy']:.2%} / {m['corpus_wer_beam']:.2%}; "
                 f"FSDD {result['holdout_speaker']}: CER {m['fsdd_cer_greedy']:.2%} / {m['fsdd_cer_beam']:.2%}, "
                 f"WER {m['fsdd_wer_greedy']:.2%} / {m['fsdd_wer_beam']:.2%} (greedy / beam)")
        met = min(m["corpus_cer_greedy"], m["corpus_cer_beam"]) <= 0.03 and \
            min(m["fsdd_cer_greedy"], m["fsdd_cer_beam"]) <= 0.15
        data = f"espeak-ng digits + FSDD, {result['holdout_speaker']} held out"
    elif task == "kws-pretrained":
        scratch = rows.get("kws-holdout", {}).get("metrics", {}).get("test_accuracy")
        score = (f"accuracy {seed_scores(m)} ({m['test_examples']} clips); from scratch (kws-holdout): "
                 + (f"{scratch:.2%}" if scratch is not None else "not run"))
        met = scratch is not None and m["test_accuracy"] > scratch
        data = (f"pretrained {m['pretrain_epochs']} epochs on {m['pretrain_clips']} espeak-ng digit words "
                f"({m['pretrain_accuracy']:.1%} on their validation tenth), fine-tuned on FSDD with "
                f"{result['holdout_speaker']} held out")
    else:
        score = f"accuracy {seed_scores(m)} ({m['test_examples']} clips)"
        met = m["test_accuracy"] >= (0.985 if task == "kws" else 0.90)
        data = "FSDD official split" if task == "kws" else f"FSDD, {result['holdout_speaker']} held out"
        if task == "kws-holdout-synthetic":
            data += f", plus {m['extra_clips']:,} espeak-ng digits in training"
    met = "" if result["shortened"] else ("yes" if met else "no")
    run = "shortened check" if result["shortened"] else "default recipe"
    return (f"| {task} | {data} | {score} | {m['epochs']} | {m['train_seconds'] / 60:.1f} min | "
            f"{result['wall'] / 60:.1f} min | {result['cpu'] / 60:.1f} min | {result['load']:.1f} | {run} | "
            f"{TARGETS[task]} | {met} |")


def seed_scores(metrics):
    """`98.40%`, or with several seeds `98.40% / 98.80% (seeds 0 / 1), mean 98.60%`."""
    if "seeds" not in metrics:
        return f"{metrics['test_accuracy']:.2%}"
    seeds = metrics["seeds"]
    return (" / ".join(f"{run['test_accuracy']:.2%}" for run in seeds.values())
            + f" (seeds {' / '.join(seeds)}), mean {metrics['test_accuracy']:.2%}")


def write_results(results):
    import keras

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    for result in results:  # In order: kws-holdout before kws-pretrained, its reference.
        rows[result["task"]] = {"row": table_row(result, rows), "metrics": result["metrics"]}
    ROWS.write_text(json.dumps(rows, indent=2) + "\n")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
    lines = [
        "# Speech: results of the default recipes",
        "",
        f"Written by `benchmarks/speech_benchmark.py` on {datetime.date.today().isoformat()}; {machine}; "
        f"keras {keras.__version__}. Seed 0 unless a row names its seeds. Training is `model.fit`; wall "
        "time is the whole run (reading and synthesizing data, evaluating, pictures, saving); CPU time is "
        "the process's (all threads). With several seeds, training is the mean of a run, and wall and "
        "CPU time the total of the runs. "
        "The load average shows how busy the machine was: with more runnable jobs than cores, times "
        "stretch beyond what the recipe needs.",
        "",
        "| task | data | result | epochs | training | wall time | CPU time | load average | run | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(rows[task]["row"] for task in TASKS if task in rows),
        "",
    ]
    missing = [task for task in TASKS if task not in rows]
    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    RESULTS.write_text("\n".join(lines))
    print(f"Wrote {RESULTS}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--epochs", type=int, help="shorten every recipe to this many epochs")
    parser.add_argument("--holdout-speaker", default="lucas", help="the FSDD speaker held out (default: lucas)")
    parser.add_argument("--corpus", default=str(Path(tempfile.gettempdir()) / "keras-attention-espeak-digits"),
                        help="where the espeak-ng corpus is synthesized once and reused")
    parser.add_argument("--synthetic-copies", type=int, default=250,
                        help="kws-pretrained: synthetic clips of each digit word (default: 250)")
    parser.add_argument("--mixed-copies", type=int, default=120,
                        help="kws-holdout-synthetic: synthetic clips of each digit in training (default: 120)")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0],
                        help="comma-separated seeds, each task run once per seed (default: 0)")
    parser.add_argument("--keep", metavar="DIR", help="keep the run folders in DIR")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.task.split(",")]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"unknown task {', '.join(unknown)}; expected some of {', '.join(TASKS)}")
    results = []
    for task in tasks:
        runs = []
        for seed in args.seeds:
            runs.append(run_task(task, args.epochs, args.holdout_speaker, args.corpus, args.keep,
                                 args.synthetic_copies, args.mixed_copies, seed))
            print(task, seed, runs[-1]["metrics"], flush=True)
        results.append(merged(runs))
    write_results(results)


if __name__ == "__main__":
    main()
