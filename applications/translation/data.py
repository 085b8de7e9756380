"""Parallel text: readers for the formats translators already have, and splits.

`--data` takes:
- `multi30k` (the default) or any folder of line-aligned `{split}.{language}`
  files, plain or gzip (`train.en.gz`, `val.de.gz`, `test_2016_flickr.de.gz`:
  Multi30k as published), chosen with `--source`, `--target` and `--split`;
- a pair of line-aligned files, plain or gzip: `PREFIX` when the files are
  `PREFIX.{source}` and `PREFIX.{target}` (optionally `.gz`), or
  `SOURCE_FILE,TARGET_FILE`;
- a TSV of pairs, `source<TAB>target` a line (more columns are ignored; a
  header naming the two languages picks the columns);
- `spa-eng` or any Tatoeba/Anki zip (`spa-eng.zip` holding `spa-eng/spa.txt`,
  `English<TAB>Spanish<TAB>attribution`), in either direction.
Data without official splits (a pair of files, a TSV, a zip) is split at random
with a fixed seed, 70/15/15 like the keras.io English-Spanish example.
"""

import csv
import dataclasses
import gzip
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from applications.common import KnownDataSet, RemoteFile, UserError, check_split, decode_lines, resolve_data

# === Settings ===
DEFAULT_DATA = "multi30k"
DEFAULT_SOURCE = "en"
DEFAULT_TARGET = "de"
# Fractions of a corpus without official splits held out for validation and test.
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15
SPLIT_SEED = 0
# File stems of each split in a folder of `{split}.{language}` files, in order of preference.
SPLIT_STEMS = {
    "train": ("train",),
    "validation": ("val", "valid", "validation", "dev"),
    "test": ("test", "test_2016_flickr", "test_2017_flickr", "test_2018_flickr", "test_2017_mscoco"),
}

_MULTI30K_URL = "https://github.com/multi30k/dataset/raw/master/data/task1/raw/"
_MULTI30K_SHA256 = {
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
}
KNOWN_DATA_SETS = (
    KnownDataSet(
        name="multi30k",
        folder="translation/multi30k",
        files={name: RemoteFile(_MULTI30K_URL + name, sha) for name, sha in _MULTI30K_SHA256.items()},
        description="Multi30k task 1 image captions, en/de/fr, 29,000 train / 1,014 val / 1,000 test",
    ),
    KnownDataSet(
        name="spa-eng",
        folder="translation/spa-eng",
        files={
            "spa-eng.zip": RemoteFile(
                "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
                "f80e581ae291aa34dd3aba7bd98b5e9505234da4318e2f3295df70a1520c7f61",
            )
        },
        description="Tatoeba English-Spanish sentence pairs (keras.io), 118,964 pairs",
    ),
)


@dataclasses.dataclass
class ParallelText:
    """Line-aligned sentences: `sources[i]` translates to `targets[i]`.

    Attributes:
        sources: list of str.
        targets: list of str.
        source_language: str, such as `"en"`.
        target_language: str, such as `"de"`.
        description: str. Where the text came from, for messages and metrics.
    """

    sources: list
    targets: list
    source_language: str
    target_language: str
    description: str

    def __len__(self):
        return len(self.sources)

    def subset(self, indices, description=None):
        return ParallelText(
            [self.sources[i] for i in indices],
            [self.targets[i] for i in indices],
            self.source_language,
            self.target_language,
            description or self.description,
        )


# === Reading files ===
def read_lines(path):
    """The lines of a UTF-8 text file, plain or gzip, without their line ends.

    A trailing newline does not make an extra empty line; whitespace at either
    end of a line is removed; empty lines are kept (alignment).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise UserError(f"Cannot read {path}: {error.strerror or error}.") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise UserError(f"{path} looks gzip-compressed but cannot be decompressed: {error}.") from None
    return decode_lines(raw, path)


def read_aligned_files(source_path, target_path, source_language, target_language):
    """Read two line-aligned files; a `UserError` if their line counts differ."""
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise UserError(
            f"The line-aligned files differ in length: {source_path} has {len(sources)} lines, "
            f"{target_path} has {len(targets)}. Line i of one must translate line i of the other; "
            "check that neither file was cut or has extra lines."
        )
    description = f"{source_path} + {target_path}"
    return ParallelText(sources, targets, source_language, target_language, description)


def read_tsv(path, source_language, target_language, lines=None):
    """Read `source<TAB>target` pairs (extra columns ignored).

    A first row whose first two columns name the two languages is a header; it
    may put the target first. Rows with fewer than two columns are an error.
    """
    lines = read_lines(path) if lines is None else lines
    source_column, target_column = 0, 1
    if lines:
        header = [cell.strip().lower() for cell in lines[0].split("\t")]
        if {source_language, target_language} <= set(header[:2]):
            source_column, target_column = header.index(source_language), header.index(target_language)
            lines = lines[1:]
    sources, targets = [], []
    for number, line in enumerate(lines, start=1):
        if not line:
            sources.append("")
            targets.append("")
            continue
        cells = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(cells) < 2:
            raise UserError(
                f"{path}, line {number}: expected `source<TAB>target`, found no tab in {line[:60]!r}. "
                "A TSV of pairs has the source sentence, a tab, then its translation."
            )
        sources.append(cells[source_column].strip())
        targets.append(cells[target_column].strip())
    return ParallelText(sources, targets, source_language, target_language, str(path))


def read_tatoeba_zip(path, source_language, target_language):
    """Read a Tatoeba/Anki zip (`xxx-eng.zip` holding `xxx.txt`: English, TAB, other).

    English is one of the two languages; the other is the zip's. Either may be
    the source.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path} is not a zip file. Expected a Tatoeba/Anki zip such as spa-eng.zip.") from None
    with archive:
        texts = [n for n in archive.namelist() if n.endswith(".txt") and not Path(n).name.startswith("_")]
        if len(texts) != 1:
            raise UserError(
                f"{path}: expected one sentence file (such as spa-eng/spa.txt) besides _about.txt, "
                f"found {texts or 'none'}."
            )
        other = Path(texts[0]).stem  # "spa"
        lines = decode_lines(archive.read(texts[0]), f"{path}:{texts[0]}")
    pairs = read_tsv(path, "en", other, lines=lines)
    languages = {"en": pairs.sources}
    for code in _language_codes(other):
        languages[code] = pairs.targets
    if source_language not in languages or target_language not in languages:
        raise UserError(
            f"{path} holds English ('en') and {other!r} ({'/'.join(_language_codes(other))}). "
            f"Received --source {source_language} --target {target_language}."
        )
    return ParallelText(
        languages[source_language], languages[target_language], source_language, target_language, str(path)
    )


def _language_codes(three_letter):
    """The codes a Tatoeba file name answers to: `spa` -> (`spa`, `es`)."""
    two_letter = {"spa": "es", "deu": "de", "fra": "fr", "ita": "it", "por": "pt", "rus": "ru", "tur": "tr",
                  "nld": "nl", "jpn": "ja", "cmn": "zh", "ara": "ar", "pol": "pl", "ukr": "uk"}
    return (three_letter,) + ((two_letter[three_letter],) if three_letter in two_letter else ())


# === Resolving --data and --split ===
def _compressed_or_plain(path):
    """`path` or `path.gz`, whichever exists, else None."""
    for candidate in (Path(path), Path(f"{path}.gz")):
        if candidate.is_file():
            return candidate
    return None


def _split_files(folder, split, source_language, target_language):
    """The `(source, target)` files of `split` in a folder of `{split}.{language}` files."""
    stems = SPLIT_STEMS[split]
    present = sorted({p.name.split(".")[0] for p in folder.iterdir() if p.is_file() and "." in p.name})
    if split == "test":  # Any test set of the folder, preferred ones first.
        stems = stems + tuple(s for s in present if s.startswith("test") and s not in stems)
    for stem in stems:
        source = _compressed_or_plain(folder / f"{stem}.{source_language}")
        target = _compressed_or_plain(folder / f"{stem}.{target_language}")
        if source and target:
            return source, target
    return None


def available_splits(folder, source_language, target_language):
    """The splits a folder of `{split}.{language}` files has for this language pair."""
    return [s for s in SPLIT_STEMS if _split_files(folder, s, source_language, target_language)]


def load_parallel_text(spec=None, source_language=DEFAULT_SOURCE, target_language=DEFAULT_TARGET,
                       split="train"):
    """Resolve `--data` and read one split of it.

    Args:
        spec: str or None. See the module docstring; `None` is Multi30k.
        source_language: str. `--source`, such as `"en"`.
        target_language: str. `--target`, such as `"de"`.
        split: str. `"train"`, `"validation"`, `"test"` or `"all"`.

    Returns:
        A `ParallelText`.
    """
    if source_language == target_language:
        raise UserError(f"--source and --target are both {source_language!r}: choose two languages.")
    spec = DEFAULT_DATA if spec is None else str(spec)
    if "," in spec and not Path(spec).exists():
        parts = [Path(p).expanduser() for p in spec.split(",")]
        if len(parts) != 2 or not all(p.is_file() for p in parts):
            raise UserError(
                f"--data {spec!r}: expected SOURCE_FILE,TARGET_FILE, two existing line-aligned files."
            )
        corpus = read_aligned_files(parts[0], parts[1], source_language, target_language)
        return split_corpus(corpus, split)
    prefix_pair = [_compressed_or_plain(f"{spec}.{language}") for language in (source_language, target_language)]
    if not Path(spec).expanduser().exists() and all(prefix_pair):
        corpus = read_aligned_files(*prefix_pair, source_language, target_language)
        return split_corpus(corpus, split)
    path, _ = resolve_data(spec, KNOWN_DATA_SETS)
    if path.is_dir():
        zips = sorted(path.glob("*.zip"))
        if available_splits(path, source_language, target_language):
            return read_split_folder(path, split, source_language, target_language)
        if len(zips) == 1:
            return split_corpus(read_tatoeba_zip(zips[0], source_language, target_language), split)
        languages = sorted({p.name.split(".")[1] for p in path.iterdir() if p.name.count(".") >= 1
                            and p.name.split(".")[0] in sum(SPLIT_STEMS.values(), ())})
        raise UserError(
            f"--data {path}: found no {{split}}.{source_language} and {{split}}.{target_language} files "
            f"(plain or .gz) there. Languages present: {', '.join(languages) or 'none'}. "
            "Check --source and --target."
        )
    if path.suffix == ".zip":
        return split_corpus(read_tatoeba_zip(path, source_language, target_language), split)
    if path.suffix in (".tsv", ".txt") or path.name.endswith((".tsv.gz", ".txt.gz")):
        return split_corpus(read_tsv(path, source_language, target_language), split)
    raise UserError(
        f"--data {path}: not a known format. Expected a folder of {{split}}.{{language}} files, "
        "PREFIX of PREFIX.{source}/PREFIX.{target}, SOURCE_FILE,TARGET_FILE, a .tsv of pairs or a "
        "Tatoeba .zip."
    )


def read_split_folder(folder, split, source_language, target_language):
    """One split (or `"all"`) of a folder of `{split}.{language}` files."""
    available = available_splits(folder, source_language, target_language)
    check_split(split, available)
    if split == "all":
        parts = [read_aligned_files(*_split_files(folder, s, source_language, target_language),
                                    source_language, target_language) for s in available]
        return ParallelText(
            sum((p.sources for p in parts), []),
            sum((p.targets for p in parts), []),
            source_language,
            target_language,
            f"{folder} (all splits)",
        )
    files = _split_files(folder, split, source_language, target_language)
    return read_aligned_files(*files, source_language, target_language)


def split_corpus(corpus, split, seed=SPLIT_SEED):
    """A seeded 70/15/15 train/validation/test split of a corpus without official splits."""
    check_split(split, ("train", "validation", "test"))
    if split == "all":
        return corpus
    order = np.random.default_rng(seed).permutation(len(corpus))
    test_size = int(round(len(corpus) * TEST_FRACTION))
    validation_size = int(round(len(corpus) * VALIDATION_FRACTION))
    parts = {
        "test": order[:test_size],
        "validation": order[test_size : test_size + validation_size],
        "train": order[test_size + validation_size :],
    }
    indices = np.sort(parts[split]).tolist()
    return corpus.subset(indices, f"{corpus.description} ({split} part of a seeded 70/15/15 split)")


def drop_empty_pairs(corpus):
    """Remove the pairs where either side is empty, with a warning saying how many."""
    keep = [i for i, (s, t) in enumerate(zip(corpus.sources, corpus.targets)) if s and t]
    dropped = len(corpus) - len(keep)
    if dropped:
        warnings.warn(
            f"{corpus.description}: skipped {dropped} of {len(corpus)} pairs with an empty side.",
            stacklevel=2,
        )
    if not keep:
        raise UserError(f"{corpus.description}: no pair has text on both sides.")
    return corpus.subset(keep) if dropped else corpus


def read_input_lines(path):
    """The sentences to translate from `--input FILE` (`-` for standard input)."""
    if str(path) == "-":
        import sys

        return decode_lines(sys.stdin.buffer.read(), "standard input")
    if not os.path.isfile(path):
        raise UserError(f"--input {path}: no such file.")
    return read_lines(path)


def write_lines(path, lines):
    """Write one line per entry, UTF-8, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with io.open(temporary, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line.replace("\n", " ") + "\n")
    os.replace(temporary, path)
    return path
