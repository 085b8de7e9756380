"""`keras-attention synthesize`: a text file -> a speech corpus spoken by espeak-ng.

    keras-attention synthesize --text sentences.txt --output corpus/
    keras-attention synthesize --digit-sequences 500 --output digits/ --voices held-out
    keras-attention synthesize --text t.txt --output c/ --voices en-us+f3,en-gb+m2 --speeds 120,160 --copies 3
    keras-attention synthesize --digit-words --copies 300 --class-folders --output spoken_digits/

Each non-empty line of the text is spoken `--copies` times, each time with a
voice, speed and pitch drawn at random; the corpus folder holds `clips/*.wav`
and `transcripts.tsv` (`file<TAB>text<TAB>voice`), which `--data` of
`speech-to-text` reads; with `--class-folders` a folder per distinct line
(`zero/000000.wav`, ...), which `--data` of `keyword-spotting` reads: the
synthetic speech a keyword spotter is pretrained on before fine-tuning on
real recordings. `synthesize` is not an application verb: `cli.py`
hands `keras-attention synthesize ...` to `main(argv)` here (also runnable as
`python -m applications.speech.synthesize_command`).
"""

import sys

from applications.common.arguments import positive_int, run_tool
from applications.common.errors import UserError

PROG = "keras-attention synthesize"
DESCRIPTION = "speak a text file with espeak-ng into a speech corpus (WAV files + transcripts.tsv)"
VOICE_SETS = ("train", "held-out", "all")


def _numbers(text):
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"Expected comma-separated whole numbers, received {text!r}.") from None
    if not values:
        raise UserError(f"Expected comma-separated whole numbers, received {text!r}.")
    return values


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="FILE", help="a UTF-8 text file, one utterance a line")
    source.add_argument("--digit-sequences", type=positive_int, metavar="N",
                        help="instead of a text: N random spoken digit sequences ('three one four')")
    source.add_argument("--digit-words", action="store_true",
                        help="instead of a text: the ten digit words 'zero' to 'nine', --copies times each")
    parser.add_argument("--class-folders", action="store_true",
                        help="write a folder of clips per distinct line (keyword spotting) instead of clips/")
    parser.add_argument("--output", required=True, metavar="DIR", help="the corpus folder to write (new or empty)")
    parser.add_argument("--voices", default="train",
                        help="'train' (176 voices), 'held-out' (64 voices never in 'train'), 'all', or "
                        "comma-separated espeak-ng voices such as en-us+f3 (default: train)")
    parser.add_argument("--speeds", default=None, help="comma-separated words per minute to draw from (default: 110-190)")
    parser.add_argument("--pitches", default=None, help="comma-separated pitches 0-99 to draw from (default: 25-75)")
    parser.add_argument("--copies", type=positive_int, default=1, help="clips per line (default: 1)")
    parser.add_argument("--min-digits", type=positive_int, default=3, help="with --digit-sequences (default: 3)")
    parser.add_argument("--max-digits", type=positive_int, default=7, help="with --digit-sequences (default: 7)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args):
    from pathlib import Path

    from applications.speech import synthesis

    if args.text is not None:
        path = Path(args.text)
        if not path.is_file():
            raise UserError(f"--text {path}: no such file.")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise UserError(f"--text {path}: not UTF-8 text ({error.reason} at byte {error.start}).") from None
    elif args.digit_words:
        lines = list(synthesis.DIGIT_WORDS)
    else:
        lines = synthesis.digit_sequences(args.digit_sequences, args.min_digits, args.max_digits, args.seed)
    voices = {"train": synthesis.TRAIN_VOICES, "held-out": synthesis.HELD_OUT_VOICES,
              "all": synthesis.TRAIN_VOICES + synthesis.HELD_OUT_VOICES}.get(args.voices)
    if voices is None:
        voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    speeds = _numbers(args.speeds) if args.speeds else synthesis.SPEEDS
    pitches = _numbers(args.pitches) if args.pitches else synthesis.PITCHES
    if not all(80 <= s <= 450 for s in speeds):
        raise UserError(f"--speeds must lie in 80-450 words per minute; received {args.speeds}.")
    if not all(0 <= p <= 99 for p in pitches):
        raise UserError(f"--pitches must lie in 0-99; received {args.pitches}.")
    transcript = synthesis.synthesize_corpus(lines, args.output, voices, speeds, pitches, args.copies, args.seed,
                                             class_folders=args.class_folders)
    clips = sum(1 for _ in open(transcript, encoding="utf-8"))
    print(f"Wrote {clips} clips and {transcript}")
    return {"clips": clips, "corpus": str(Path(args.output))}


def main(argv=None):
    """Run `keras-attention synthesize`; returns the exit status (0, 1 user error, 2 bad flags)."""
    return run_tool(PROG, DESCRIPTION, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
