"""Readers for text classification data: what users already have, and three published sets.

Formats read from a path (`--data PATH`):
- a TSV or CSV file of text and label, with or without a header row. The columns are named
  with `text_column=` / `label_column=` (a 0-based index or a header name), or detected: the
  label is the column with the fewest distinct values, the text the longest of the others.
- a folder of class folders of `.txt` files, as `keras.utils.text_dataset_from_directory`
  reads it (`DIR/<class>/**/*.txt`, classes in alphanumeric order); a folder that holds
  `train/` and `test/` (and optionally `validation/`) folders of that layout has splits.
- the published files of SST-2 (a folder with `train.tsv` and `dev.tsv`, `sentence<TAB>label`,
  with GLUE's header row or without),
  TREC (a folder of `*.label` files, `COARSE:fine question`, ISO-8859-1) and the SMS Spam
  Collection (`SMSSpamCollection`, `ham|spam<TAB>text`).

Named data sets (`--data sst2`) resolve inside the data directory (`KERAS_ATTENTION_DATA`):
`sst2` (`text/sst2`), `trec` and `trec-fine` (`text/trec`, 6 coarse or 50 fine classes) and
`sms-spam` (`text/sms_spam`).

Splits. SST-2: `train` and `validation` (the published dev file; the published test split is
not distributed, so `validation` is what `evaluate` uses). TREC: `test` is the published test
file `TREC_10.label` where the folder holds it, a held-out tenth of the training file otherwise
(the shared data holds no test file), `train` the rest. SMS Spam Collection, a TSV/CSV file and
a folder of class folders: `test` is a held-out fifth, `train` the rest (as the other
applications do with data that has no test split). `all` is everything. Held-out splits are stratified and drawn with the
fixed `SPLIT_SEED`, not the training seed, so that every run is tested on the same examples.
The validation data that training tunes on (early stopping) is always cut out of the `train`
split by the recipe.
"""

import csv
import dataclasses
import io
import os
import pathlib

import numpy as np

from applications.common.data import SPLITS
from applications.common.data import KnownDataSet
from applications.common.data import RemoteFile
from applications.common.data import resolve_data
from applications.common.data import stratified_split as stratified_indices
from applications.common.errors import UserError

# The seed of the held-out splits (TREC's tenth, SMS's fifth): a constant, so the test
# examples do not move with `--seed`.
SPLIT_SEED = 20240

_SST2 = "https://raw.githubusercontent.com/clairett/pytorch-sentiment-classification/master/data/SST2/"
_TREC = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
# The named data sets, inside the data directory; missing files download when online
# (the SMS Spam Collection is published as a zip only: place `SMSSpamCollection` there).
KNOWN_DATA_SETS = (
    KnownDataSet(
        "sst2",
        "text/sst2",
        {
            "train.tsv": RemoteFile(
                _SST2 + "train.tsv",
                "ec192f833a64da08f475488a77b0d0b47db47acd0f458bd18433fc793b569920",
            ),
            "dev.tsv": RemoteFile(
                _SST2 + "dev.tsv",
                "eddea6b39e601dd4e7a672b53cc40fdf6019fa80522f351206c24340ca5d9359",
            ),
        },
        "Stanford Sentiment Treebank, binary, sentences (train / validation = dev)",
    ),
    KnownDataSet(
        "trec",
        "text/trec",
        {
            "train_5500.label": RemoteFile(
                _TREC + "train_5500.label",
                "8bd6e79493f43bbd22c364587366a1dced54e1e31259eaa92721a0f526031116",
            )
        },
        "TREC questions, 6 coarse classes (test = a held-out tenth of train)",
    ),
    KnownDataSet(
        "trec-fine",
        "text/trec",
        {
            "train_5500.label": RemoteFile(
                _TREC + "train_5500.label",
                "8bd6e79493f43bbd22c364587366a1dced54e1e31259eaa92721a0f526031116",
            )
        },
        "TREC questions, 50 fine classes (test = a held-out tenth of train)",
    ),
    KnownDataSet(
        "sms-spam",
        "text/sms_spam",
        {},
        "SMS Spam Collection, ham / spam (stratified 80/20 train / test)",
    ),
)
NAMED_DATA_SETS = {dataset.name: dataset for dataset in KNOWN_DATA_SETS}
SST2_LABELS = {"0": "negative", "1": "positive"}
TREC_TRAIN_FILE = "train_5500.label"  # The published training set, all 5,452 questions.
TREC_TEST_FILE = "TREC_10.label"  # The published test set: 500 questions of TREC 10.
# Header names that say "this first row is a header", for files without `label_column=`.
_HEADER_WORDS = {
    "text", "sentence", "sentences", "review", "message", "document", "content", "body",
    "question", "label", "labels", "class", "category", "target", "sentiment", "y", "tag",
    "v1", "v2",  # Kaggle's spam.csv: `v1,v2,,,` over `ham|spam,text,,,`.
}


@dataclasses.dataclass
class TextData:
    """Texts and their labels (label names as strings), plus where they came from."""

    texts: list
    labels: list
    source: str = ""

    def __len__(self):
        return len(self.texts)

    @property
    def class_names(self):
        return sorted(set(self.labels), key=_natural_key)


@dataclasses.dataclass
class Splits:
    """The splits of one data set (`train`, `validation`, `test`, `all`)."""

    splits: dict
    name: str

    @property
    def evaluation_split(self):
        """The split that `evaluate` uses by default: the held-out one."""
        for split in ("test", "validation", "all"):
            if split in self.splits:
                return split
        raise AssertionError(self.splits)

    def get(self, split):
        if split == "all" and "all" not in self.splits:
            parts = list(self.splits.values())
            return joined(parts, parts[0].source)
        if split not in self.splits:
            raise UserError(
                f"The data set {self.name} has no '{split}' split; it has "
                f"{', '.join(sorted(self.splits))}."
            )
        data = self.splits[split]
        if not data.texts:
            raise UserError(
                f"The '{split}' split of {self.name} holds no examples (too few examples to hold "
                f"any out); use --split all."
            )
        return data


def load_splits(data, text_column=None, label_column=None, encoding=None):
    """Read a named data set or a path into its splits.

    Args:
        data: str. A named data set (`sst2`, `trec`, `trec-fine`, `sms-spam`) or a path.
        text_column, label_column: str or int. Columns of a TSV/CSV file (index or header
            name); detected when `None`.
        encoding: str. Text encoding of user files. Defaults to UTF-8 (with or without BOM).

    Returns:
        A `Splits`. Raises `UserError` for anything wrong with the data.
    """
    path, known = resolve_data(data, KNOWN_DATA_SETS)
    if known is not None:
        return Splits(_NAMED_READERS[known.name](path), known.name)
    if path.is_dir():
        if (path / "train.tsv").is_file():
            return Splits(read_sst2(path), str(path))
        if sorted(path.glob("*.label")):
            return Splits(read_trec(path), str(path))
        if (path / "SMSSpamCollection").is_file():
            return Splits(read_sms_spam(path), str(path))
        return Splits(read_class_folders(path, encoding=encoding), str(path))
    if path.name == "SMSSpamCollection":
        return Splits(read_sms_spam(path), str(path))
    if path.suffix == ".label":
        return Splits(read_trec(path), str(path))
    data = read_table(path, text_column=text_column, label_column=label_column, encoding=encoding)
    return Splits(held_out_fifth(data), str(path))


def load(data, split="train", **kwargs):
    """`load_splits(data, **kwargs).get(split)`."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}. Expected one of {', '.join(SPLITS)}.")
    return load_splits(data, **kwargs).get(split)


# === Published data sets ===


def read_sst2(folder):
    """SST-2: `train.tsv` and `dev.tsv`, `sentence<TAB>label`.

    Without a header (the sentence-level files of the shared data) or with GLUE's
    `sentence<TAB>label` header (GLUE's SST-2, whose `train.tsv` holds the treebank's
    phrases; its unlabeled `test.tsv` is not read). Labels 0 and 1 are named `negative`
    and `positive`.
    """
    folder = pathlib.Path(folder)
    splits = {}
    for split, filename in (("train", "train.tsv"), ("validation", "dev.tsv")):
        if (folder / filename).is_file():
            # header=None: detected, so GLUE's first row is not read as a sentence labeled "label".
            data = read_table(folder / filename, text_column=0, label_column=1, header=None)
            unknown = sorted(set(data.labels) - set(SST2_LABELS))
            if unknown:
                raise UserError(
                    f"{folder / filename}: labels must be 0 or 1 (SST-2); found {unknown[:5]}."
                )
            data.labels = [SST2_LABELS[label] for label in data.labels]
            splits[split] = data
    if "train" not in splits:
        raise UserError(f"{folder} holds no train.tsv: not an SST-2 folder.")
    return splits


def read_trec(folder_or_file):
    """TREC: `COARSE:fine question text` a line, ISO-8859-1; labels `COARSE` (6 classes).

    In a folder, `train_5500.label` is the training file where it is present (the published
    `train_1000` ... `train_4000` are its subsets: read together, they would repeat questions
    across the held-out split), every `*.label` file otherwise; `TREC_10.label`, the published
    test set, is the `test` split where it is present, a stratified tenth of the training file
    otherwise.
    """
    return _read_trec(folder_or_file, fine=False)


def read_trec_fine(folder_or_file):
    """TREC with the 50 fine labels (`COARSE:fine`); files and splits as `read_trec`."""
    return _read_trec(folder_or_file, fine=True)


def read_sms_spam(folder_or_file):
    """SMS Spam Collection: `ham|spam<TAB>text`; a stratified 80/20 train/test split."""
    path = pathlib.Path(folder_or_file)
    if path.is_dir() or not path.exists():
        path = path / "SMSSpamCollection"
    if not path.is_file():
        raise UserError(
            f"No SMS Spam Collection at {path}: download smsspamcollection.zip from the UCI "
            f"repository and place its SMSSpamCollection file there."
        )
    # The collection mixes encodings: each line is read as UTF-8 where it decodes, and as
    # latin-1 (which decodes anything) where it does not.
    texts, labels = [], []
    for number, line in enumerate(_read_lines(path, encoding="utf-8-or-latin-1"), start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not text.strip():
            raise UserError(f"{path}, line {number}: expected 'ham|spam<TAB>text', got {line[:60]!r}.")
        texts.append(text)
        labels.append(label.strip())
    return held_out_fifth(_checked(TextData(texts, labels, str(path))))


def _read_trec(folder_or_file, fine):
    path = pathlib.Path(folder_or_file)
    if not path.is_dir():
        return _trec_splits(_read_trec_file(path, fine))
    files = sorted(path.glob("*.label"))
    if not files:
        raise UserError(f"{path} holds no *.label file: not a TREC folder.")
    test_file, whole_train_file = path / TREC_TEST_FILE, path / TREC_TRAIN_FILE
    train_files = [whole_train_file] if whole_train_file.is_file() else [f for f in files if f != test_file]
    if not train_files:
        raise UserError(f"{path} holds the test file {TREC_TEST_FILE} only: add {TREC_TRAIN_FILE} to train on.")
    train = joined([_read_trec_file(file, fine) for file in train_files], str(path))
    if not test_file.is_file():
        return _trec_splits(train)
    test = _read_trec_file(test_file, fine)
    return {"train": train, "test": test, "all": joined([train, test], str(path))}


def _read_trec_file(path, fine=False):
    texts, labels = [], []
    for number, line in enumerate(_read_lines(path, encoding="iso-8859-1"), start=1):
        if not line.strip():
            continue
        label, space, text = line.partition(" ")
        if not space or ":" not in label or not text.strip():
            raise UserError(
                f"{path}, line {number}: expected 'COARSE:fine question', got {line[:60]!r}."
            )
        texts.append(text.strip())
        labels.append(label if fine else label.split(":")[0])
    return _checked(TextData(texts, labels, str(path)))


def held_out_fifth(data):
    """`train` and `test` (a stratified fifth, always the same one) and `all` of one file."""
    train, test = stratified_split(data, 0.2, SPLIT_SEED)
    return {"train": train, "test": test, "all": data}


def _trec_splits(data):
    train, test = stratified_split(data, 0.1, SPLIT_SEED)
    return {"train": train, "test": test, "all": data}


_NAMED_READERS = {
    "sst2": read_sst2,
    "trec": read_trec,
    "trec-fine": read_trec_fine,
    "sms-spam": read_sms_spam,
}


# === Files users already have ===


def read_table(path, text_column=None, label_column=None, header=None, encoding=None):
    """A TSV (`.tsv`, `.txt`) or CSV (`.csv`) file of text and label.

    Args:
        path: the file.
        text_column, label_column: int or str. 0-based index or header name; detected when
            `None`.
        header: bool. Whether the first row is a header; detected when `None`.
        encoding: str. Defaults to UTF-8 (a BOM is skipped).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"No such file: {path}.")
    lines = [line for line in _read_lines(path, encoding) if line.strip()]
    if not lines:
        raise UserError(f"{path} is empty: expected lines of text and label.")
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
    else:
        rows = [line.split("\t") for line in lines]
    width = max(len(row) for row in rows)
    if width < 2:
        raise UserError(
            f"{path}: found one column only; expected text and label separated by "
            f"{'a comma' if path.suffix.lower() == '.csv' else 'a tab'} on each line."
        )
    names = rows[0]
    text_index = _column_index(text_column, names, width, path, "text")
    label_index = _column_index(label_column, names, width, path, "label")
    if header is None:
        header = _looks_like_header(rows, text_column, label_column, label_index)
    body = rows[1:] if header else rows
    first_line = 2 if header else 1
    if label_index is None:
        label_index = _detect_label_column(body, width)
    if text_index is None:
        text_index = _detect_text_column(body, width, label_index)
    if text_index == label_index:
        raise UserError(f"{path}: the text and label columns are the same ({text_index}).")
    texts, labels = [], []
    for number, row in enumerate(body, start=first_line):
        if max(text_index, label_index) >= len(row) or not row[label_index].strip():
            raise UserError(
                f"{path}, line {number}: no label (expected {width} columns, text in column "
                f"{text_index} and label in column {label_index}); got {row!r:.80}."
            )
        texts.append(row[text_index])
        labels.append(row[label_index].strip())
    return _checked(TextData(texts, labels, str(path)))


def read_class_folders(folder, encoding=None):
    """A folder of class folders of `.txt` files, one example a file.

    As `keras.utils.text_dataset_from_directory`: the class names are the sub-folders in
    alphanumeric order, files are found recursively. A folder holding `train/` and `test/`
    (and optionally `validation/` or `dev/`) of that layout gives those splits.
    """
    folder = pathlib.Path(folder)
    split_folders = {
        split: folder / name
        for split, name in (("train", "train"), ("validation", "validation"),
                            ("validation", "dev"), ("test", "test"))
        if (folder / name).is_dir()
    }
    if "train" in split_folders and len(split_folders) > 1:
        splits = {
            split: _read_class_folder(path, encoding) for split, path in split_folders.items()
        }
        return splits
    return held_out_fifth(_read_class_folder(folder, encoding))


def _read_class_folder(folder, encoding):
    classes = sorted(
        entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
    )
    if not classes:
        raise UserError(
            f"{folder} holds no class folders: expected {folder}/<class>/*.txt (or a TSV/CSV "
            f"file, or an SST-2, TREC or SMS Spam Collection folder)."
        )
    texts, labels = [], []
    for name in classes:
        for root, _, files in sorted(os.walk(folder / name)):
            for filename in sorted(files):
                if filename.lower().endswith(".txt"):
                    path = pathlib.Path(root) / filename
                    texts.append("\n".join(_read_lines(path, encoding)))
                    labels.append(name)
    if not texts:
        raise UserError(f"{folder}: the class folders {classes} hold no .txt files.")
    return _checked(TextData(texts, labels, str(folder)))


# === Helpers ===


def joined(parts, source):
    """One `TextData` of the examples of `parts`, in order."""
    return TextData([text for part in parts for text in part.texts],
                    [label for part in parts for label in part.labels], source)


def stratified_split(data, fraction, seed):
    """Split `data` in two, `fraction` of each class in the second part.

    Deterministic for a seed; the order of examples inside each part is the file order.
    Each class of two examples or more keeps at least one example on each side.
    """
    rest, held_out = stratified_indices(data.labels, fraction, seed)
    return take(data, rest), take(data, held_out)


def take(data, indices):
    """The examples of `data` at `indices`."""
    return TextData(
        [data.texts[i] for i in indices], [data.labels[i] for i in indices], data.source
    )


def read_text_lines(path, encoding=None):
    """The lines of a UTF-8 (or `encoding`) text file; `UserError` if missing or undecodable."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"No such file: {path}.")
    return _read_lines(path, encoding)


def _read_lines(path, encoding=None):
    """The lines of a text file; undecodable bytes are a `UserError` that says where."""
    try:
        raw = pathlib.Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"Cannot read {path}: {error.strerror}.") from None
    if encoding == "utf-8-or-latin-1":
        lines = []
        for line in raw.splitlines():
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("latin-1"))
        return lines
    encoding = encoding or "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise UserError(
            f"{path}, line {line}: byte 0x{raw[error.start]:02x} is not valid {encoding} text. "
            f"Save the file as UTF-8, or give its encoding (--encoding latin-1)."
        ) from None
    except LookupError:
        raise UserError(f"Unknown encoding: {encoding}.") from None
    return text.splitlines()


def _checked(data):
    if not data.texts:
        raise UserError(f"{data.source} holds no examples.")
    return data


def _column_index(column, names, width, path, what):
    if column is None:
        return None
    if isinstance(column, str) and column.lstrip("-").isdigit():
        column = int(column)
    if isinstance(column, int):
        if not -width <= column < width:
            raise UserError(f"{path}: no {what} column {column}; the file has {width} columns.")
        return column % width
    stripped = [name.strip() for name in names]
    if column not in stripped:
        raise UserError(
            f"{path}: no {what} column named '{column}'; the first row holds {stripped}."
        )
    return stripped.index(column)


def _looks_like_header(rows, text_column, label_column, label_index):
    """Whether the first row names the columns rather than holding an example."""
    if isinstance(text_column, str) and not text_column.isdigit():
        return True
    if isinstance(label_column, str) and not label_column.isdigit():
        return True
    first = [cell.strip().lower() for cell in rows[0]]
    if any(cell in _HEADER_WORDS for cell in first) and len(rows) > 1:
        width = max(len(row) for row in rows)
        index = label_index if label_index is not None else _detect_label_column(rows[1:], width)
        # A header word that is also a class of the body ("label") is data, not a header.
        body_labels = {row[index].strip().lower() for row in rows[1:] if index < len(row)}
        return first[index] not in body_labels if index < len(first) else True
    return False


def _detect_label_column(rows, width):
    """The column with the fewest distinct values (ties: the shortest values).

    Among the columns filled on at least half of the rows where there are any: a column blank
    on most rows (the trailing `,,,` of Kaggle's spam.csv) has the fewest values, but it is no
    label column. (A label column with a few blank rows stays one: those rows are errors.)
    """
    filled = [index for index in range(width)
              if 2 * sum(index < len(row) and bool(row[index].strip()) for row in rows) >= len(rows)]
    best = None
    for index in filled or range(width):
        values = [row[index].strip() for row in rows if index < len(row)]
        if not values:
            continue
        key = (len(set(values)), np.mean([len(value) for value in values]))
        if best is None or key < best[0]:
            best = (key, index)
    return best[1]


def _detect_text_column(rows, width, label_index):
    """The longest column other than the label."""
    lengths = [
        np.mean([len(row[index]) if index < len(row) else 0 for row in rows])
        if index != label_index
        else -1
        for index in range(width)
    ]
    return int(np.argmax(lengths))


def _natural_key(name):
    """Sort '2' before '10' for numeric labels, names alphabetically."""
    return (0, int(name), "") if name.lstrip("-").isdigit() else (1, 0, name)
