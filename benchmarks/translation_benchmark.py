"""Translation: quality of the default recipes on Multi30k en->de, and decoding speed.

    python benchmarks/translation_benchmark.py decoding                  # cached vs recomputed decoding
    python benchmarks/translation_benchmark.py train                     # the default Transformer recipe
    python benchmarks/translation_benchmark.py train --architecture rnn-attention
    python benchmarks/translation_benchmark.py train --max-minutes 10 --max-examples 5000   # a short check
    python benchmarks/translation_benchmark.py evaluate --model runs/en-de                 # an existing run

`train` runs `applications.translation.recipe.train` (exactly what
`keras-attention train translation` runs, seed 0) and scores the whole
test_2016_flickr set with sacreBLEU (BLEU and chrF), greedy and beam search
(width 4, length penalty 0.6), with the time of each. Runs with `--epochs`,
`--max-minutes` or `--max-examples` are marked as shortened and never count as
meeting a target.

`decoding` times greedy decoding of 64-token outputs with the decoder caches
against recomputing the decoder over the whole prefix at every step (the
encoder runs once in both), on the default Transformer (random weights: speed
does not depend on them) and on a trained run with `--model`.

Results go to `benchmarks/results/translation.md` (rows kept in
`translation.json`; a new run replaces the row of the same name), with the
machine, its load average and the process CPU time: on a shared machine wall
time stretches beyond what the recipe needs. The data directory defaults to
`../shared/data` beside the checkout (set `KERAS_ATTENTION_DATA` to use another).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_ATTENTION_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = ROOT / "benchmarks" / "results" / "translation.md"
ROWS = ROOT / "benchmarks" / "results" / "translation.json"
TARGETS = {"transformer": 34.0, "rnn-attention": 28.0}
TRAINING_BUDGET_MINUTES = 90
BEAM = dict(beam_width=4, length_penalty=0.6)
DECODING_STEPS = 64  # Generated tokens per sentence in the speed benchmark.
SPEEDUP_TARGET = 5.0


def machine():
    cores = os.cpu_count()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {cores} CPU cores"


def load_average():
    return round(os.getloadavg()[0], 1)


# === Quality ===
def score_run(run, examples=None):
    """BLEU/chrF (greedy and beam 4) of a run folder on the whole test_2016_flickr set, en->de."""
    from applications.common import load_model, load_settings
    from applications.translation import data, evaluation

    translator = load_model(run)
    settings = load_settings(Path(run) / "model.keras")
    test = data.load_parallel_text(settings.get("data", "multi30k"), settings.get("source_language", "en"),
                                   settings.get("target_language", "de"), "test")
    if examples:
        test = test.subset(range(min(examples, len(test))))
    results = {}
    for name, search in (("greedy", dict(search="greedy")), ("beam", dict(search="beam", **BEAM))):
        cpu = time.process_time()
        scores = evaluation.score_translator(translator, test, output=Path(run) / f"benchmark-{name}", **search)
        results[name] = dict(bleu=round(scores["bleu"], 2), chrf=round(scores["chrf"], 2),
                             seconds=scores["seconds"], cpu_seconds=round(time.process_time() - cpu, 1))
    results["examples"] = len(test)
    results["signature"] = scores["bleu_signature"]
    return results


def train_and_score(args):
    from applications.translation import recipe

    keep = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    output = keep / f"translation-{args.architecture}"
    if output.exists():
        shutil.rmtree(output)
    load_before = load_average()
    wall, cpu = time.perf_counter(), time.process_time()
    metrics = recipe.train(None, output, architecture=args.architecture, epochs=args.epochs,
                           max_minutes=args.max_minutes, max_examples=args.max_examples,
                           warmup_steps=args.warmup_steps, evaluate_examples=1, quiet=args.quiet)
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    scores = score_run(output)
    shortened = any(v is not None for v in (args.epochs, args.max_minutes, args.max_examples, args.warmup_steps))
    row = dict(
        name=args.name or (f"{args.architecture} (shortened)" if shortened else f"{args.architecture} default recipe"),
        architecture=args.architecture,
        recipe=describe_recipe(args.architecture, metrics, args),
        greedy=scores["greedy"],
        beam=scores["beam"],
        training_minutes=round(metrics["training_seconds"] / 60, 1),
        wall_minutes=round(train_wall / 60, 1),
        cpu_minutes=round(train_cpu / 60, 1),
        epochs=metrics["epochs_completed"],
        train_examples=metrics["train_examples"],
        load_average=round((load_before + load_average()) / 2, 1),
        machine=machine(),
        shortened=shortened,
        date=datetime.date.today().isoformat(),
        signature=scores["signature"],
    )
    row["target_met"] = (not shortened and row["training_minutes"] <= TRAINING_BUDGET_MINUTES
                         and scores["greedy"]["bleu"] >= TARGETS[args.architecture])
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)
    return row


def describe_recipe(architecture, metrics, args):
    from applications.translation import recipe

    model = recipe.MODELS[architecture]
    if architecture == "transformer":
        text = (f"{model['num_layers']}+{model['num_layers']} layers, width {model['hidden_dim']}, "
                f"{model['num_heads']} heads, FF {model['intermediate_dim']}")
    else:
        text = f"bi-GRU {model['units'] // 2}x2, GRU {model['units']}, {model['attention']}"
    return (f"{text}; {metrics['parameters'] / 1e6:.1f}M weights; shared {recipe.VOCABULARY_SIZE} SentencePiece; "
            f"{metrics['epochs_completed']} epochs of {metrics['train_examples']} pairs")


# === Decoding speed ===
def time_decoding(translator, source_ids, repeats):
    """Seconds (wall and CPU) per batch: cached greedy, recomputed greedy, cached beam 4."""
    import numpy as np

    results = {}
    length = dict(max_length=translator.sequence_length)  # Start token + every step.
    for name, kwargs in (("cached greedy", dict(search="greedy", cached=True, **length)),
                         ("recomputed greedy", dict(search="greedy", cached=False, **length)),
                         ("cached beam 4", dict(search="beam", cached=True, **BEAM, **length))):
        outputs = np.asarray(translator.generate(source_ids, **kwargs))  # Trace, and warm up.
        wall, cpu = [], []
        for _ in range(repeats):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            outputs = np.asarray(translator.generate(source_ids, **kwargs))
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
        results[name] = dict(wall=min(wall), cpu=min(cpu), generated=int((outputs[:, 1:] != 0).sum(axis=1).mean()))
    return results


def decoding_benchmark(args):
    import numpy as np

    from applications.common import load_model
    from applications.translation import data, model as model_module, recipe, tokenization

    test = data.load_parallel_text("multi30k", "en", "de", "test").subset(range(args.batch_size))
    rows = []
    if args.model:
        translator = load_model(args.model)
        label = f"trained run ({Path(args.model).name})"
    else:
        sentences = data.load_parallel_text("multi30k", "en", "de", "validation")
        proto = tokenization.learn_vocabulary(sentences.sources + sentences.targets, recipe.VOCABULARY_SIZE)
        source, target = tokenization.make_tokenizer(proto), tokenization.make_tokenizer(proto)
        size = source.vocabulary_size()
        # Room for the start token and 64 generated tokens.
        seq2seq = model_module.build_seq2seq("transformer", size, size, DECODING_STEPS + 1,
                                             share_embeddings=True, **recipe.MODELS["transformer"])
        translator = model_module.Translator(seq2seq, source, target)
        label = "default Transformer, random weights"
    # No end token: all sentences decode the full length (random weights would stop anywhere).
    translator.search = _search_without_end(translator)
    rows_ids = tokenization.tokenize(translator.source_tokenizer, test.sources).to_list()
    ids = np.zeros((len(rows_ids), max(map(len, rows_ids))), "int32")
    for i, row in enumerate(rows_ids):
        ids[i, : len(row)] = row
    load_before = load_average()
    timing = time_decoding(translator, ids, args.repeats)
    cached, recomputed = timing["cached greedy"], timing["recomputed greedy"]
    row = dict(
        name=f"decoding: {label}",
        model=label,
        batch=len(ids),
        steps=translator.sequence_length - 1,
        timing={k: {"wall": round(v["wall"], 3), "cpu": round(v["cpu"], 3), "generated": v["generated"]}
                for k, v in timing.items()},
        speedup_wall=round(recomputed["wall"] / cached["wall"], 2),
        speedup_cpu=round(recomputed["cpu"] / cached["cpu"], 2),
        load_average=round((load_before + load_average()) / 2, 1),
        machine=machine(),
        date=datetime.date.today().isoformat(),
    )
    row["target_met"] = row["speedup_cpu"] >= SPEEDUP_TARGET and row["speedup_wall"] >= SPEEDUP_TARGET
    rows.append(row)
    return rows


def _search_without_end(translator):
    from keras_attention.generation import BeamSearch, GreedySearch

    def search(search="greedy", beam_width=4, length_penalty=0.6):
        if search == "greedy":
            return GreedySearch(end_token_id=None)
        return BeamSearch(beam_width=beam_width, length_penalty=length_penalty, end_token_id=None)

    return search


# === Results ===
def write_results(new_rows):
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else []
    names = {r["name"] for r in new_rows}
    rows = [r for r in rows if r["name"] not in names] + new_rows
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    ROWS.write_text(json.dumps(rows, indent=2) + "\n")
    import keras

    lines = [
        "# Translation: results of the default recipes and decoding speed",
        "",
        f"Written by `benchmarks/translation_benchmark.py`; keras {keras.__version__}; each row names the "
        "machine it was measured on. "
        "Scores: sacreBLEU on detokenized, cased text against the references as published "
        f"(`{next((r['signature'] for r in rows if 'signature' in r), 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp')}`), "
        "and chrF, over the whole Multi30k test_2016_flickr set (1,000 sentences), English to German. "
        "CPU time is the process's (all threads); the load average shows how busy the shared machine was "
        "(with more runnable jobs than cores, wall times stretch).",
        "",
        "## Quality",
        "",
        "| run | recipe | greedy BLEU | greedy chrF | beam 4 BLEU | beam 4 chrF | training (wall) | training (CPU) "
        "| test decoding greedy / beam (wall) | machine | load average | date | target met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "greedy" not in r:
            continue
        lines.append(
            f"| {r['name']} | {r['recipe']} | {r['greedy']['bleu']:.2f} | {r['greedy']['chrf']:.2f} | "
            f"{r['beam']['bleu']:.2f} | {r['beam']['chrf']:.2f} | {r['training_minutes']} min | "
            f"{r['cpu_minutes']} min | {r['greedy']['seconds']:.0f} s / {r['beam']['seconds']:.0f} s | "
            f"{r['machine']} | {r['load_average']} | {r['date']} | {'yes' if r['target_met'] else 'no'} |"
        )
    lines += [
        "",
        "Targets (2-core CPU): Transformer >= 34 BLEU trained in <= 90 minutes; RNN with attention >= 28; "
        "beam 4 >= greedy + 0.5 BLEU. Shortened runs never meet a target.",
        "",
        "## Decoding speed",
        "",
        f"Greedy decoding of {DECODING_STEPS}-token outputs (no end token, so every sentence runs every step) "
        "with the decoder's key/value caches, against recomputing the decoder over the whole prefix at every "
        "step; the encoder runs once in both. Seconds per batch, the best of the repeats.",
        "",
        "| model | batch | cached greedy (wall / CPU) | recomputed greedy (wall / CPU) | speedup (wall / CPU) "
        "| cached beam 4 (wall / CPU) | machine | load average | date | >= 5x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "timing" not in r:
            continue
        t = r["timing"]
        lines.append(
            f"| {r['model']} | {r['batch']} x {r['steps']} tokens | {t['cached greedy']['wall']:.2f} s / "
            f"{t['cached greedy']['cpu']:.2f} s | {t['recomputed greedy']['wall']:.2f} s / "
            f"{t['recomputed greedy']['cpu']:.2f} s | {r['speedup_wall']}x / {r['speedup_cpu']}x | "
            f"{t['cached beam 4']['wall']:.2f} s / {t['cached beam 4']['cpu']:.2f} s | {r['machine']} | "
            f"{r['load_average']} | "
            f"{r['date']} | {'yes' if r['target_met'] else 'no'} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"Wrote {RESULTS}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a default recipe and score it")
    train.add_argument("--architecture", choices=sorted(TARGETS), default="transformer")
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-minutes", type=float)
    train.add_argument("--max-examples", type=int)
    train.add_argument("--warmup-steps", type=int, help="for shortened runs (default: the recipe's)")
    train.add_argument("--keep", metavar="DIR", help="keep the run folder in DIR")
    train.add_argument("--name", help="the row's name (default: from the settings)")
    train.add_argument("--quiet", action="store_true")
    evaluate = commands.add_parser("evaluate", help="score an existing run folder")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--examples", type=int)
    decoding = commands.add_parser("decoding", help="cached against recomputed decoding")
    decoding.add_argument("--model", help="a trained run (default: the default Transformer, random weights)")
    decoding.add_argument("--batch-size", type=int, default=32)
    decoding.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "train":
        rows = [train_and_score(args)]
    elif args.command == "decoding":
        rows = decoding_benchmark(args)
    else:
        print(json.dumps(score_run(args.model, args.examples), indent=2))
        return 0
    print(json.dumps(rows, indent=2))
    write_results(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
