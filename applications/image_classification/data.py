"""Image data: readers for every supported format, all giving an `ImageData`.

Formats:
- `digits`: scikit-learn's bundled 8x8 digits (1,797 images, offline).
- `fashion-mnist`: the four IDX gzip files as published, in a folder
  (`$KERAS_ATTENTION_DATA/images/fashion-mnist`; downloaded when missing).
- A folder of class folders of images (`.bmp .gif .jpeg .jpg .png`, any size
  and mode, searched recursively, classes sorted by name, as
  `keras.utils.image_dataset_from_directory` reads them); or a folder holding
  `train/` and `test/` (and optionally `validation/`) folders of that kind.
- NumPy arrays from Python (`ImageData.from_arrays`).

Images are held in memory as uint8 arrays `(N, height, width, channels)`.
Where a data set has no split of its own, a stratified fifth is held out for
testing and a tenth of the rest for validation, always with the same seed, so
that the test examples do not change between runs.
"""

import dataclasses
import gzip
import struct
import sys
from pathlib import Path

import keras
import numpy as np

from applications.common import KnownDataSet, RemoteFile, UserError, stratified_split

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
TEST_FRACTION = 0.2  # Held out for testing where a data set has no test split.
VALIDATION_FRACTION = 0.1  # Of the rest, for validation, where there is no validation split.
SPLIT_SEED = 0  # Fixed: the held-out examples never depend on --seed.

_FASHION_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FASHION_MNIST = KnownDataSet(
    name="fashion-mnist",
    folder="images/fashion-mnist",
    # SHA-256 of the published files (the same bytes as ../shared/data/images/fashion-mnist).
    files={
        "train-images-idx3-ubyte.gz": RemoteFile(
            _FASHION_URL + "train-images-idx3-ubyte.gz",
            "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        ),
        "train-labels-idx1-ubyte.gz": RemoteFile(
            _FASHION_URL + "train-labels-idx1-ubyte.gz",
            "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        ),
        "t10k-images-idx3-ubyte.gz": RemoteFile(
            _FASHION_URL + "t10k-images-idx3-ubyte.gz",
            "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        ),
        "t10k-labels-idx1-ubyte.gz": RemoteFile(
            _FASHION_URL + "t10k-labels-idx1-ubyte.gz",
            "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        ),
    },
    description="Fashion-MNIST, 28x28 gray, 10 classes, 60,000 train / 10,000 test",
)
DIGITS = KnownDataSet(
    name="digits", folder="images/digits", description="scikit-learn's 8x8 digits, 10 classes (bundled)"
)
KNOWN_DATASETS = (DIGITS, FASHION_MNIST)
FASHION_MNIST_CLASSES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]


@dataclasses.dataclass
class ImageData:
    """Images and integer labels in memory, by split.

    Args:
        splits: dict. Split name (`"train"`, `"validation"`, `"test"`) ->
            `(images, labels)`: uint8 `(N, height, width, channels)` and
            int `(N,)`.
        class_names: list of str. The name of each label.
        name: str. Where the data came from.
    """

    splits: dict
    class_names: list
    name: str = "arrays"

    @property
    def image_shape(self):
        return tuple(next(iter(self.splits.values()))[0].shape[1:])

    def get(self, split):
        """`(images, labels)` of one split, or of all of them (`"all"`)."""
        if split == "all":
            images, labels = zip(*self.splits.values())
            return np.concatenate(images), np.concatenate(labels)
        if split not in self.splits:
            raise UserError(
                f"The data {self.name} has no {split!r} split (it has: {', '.join(self.splits)}). "
                "Use one of those or --split all."
            )
        return self.splits[split]

    def with_channels(self, channels):
        """The same data with 1 (gray) or 3 (RGB) channels."""
        splits = {k: (to_channels(x, channels), y) for k, (x, y) in self.splits.items()}
        return ImageData(splits, self.class_names, self.name)

    def relabel(self, class_names):
        """The same data labelled by `class_names`, a superset of its own classes."""
        index = np.array([class_names.index(c) for c in self.class_names], dtype="int64")
        splits = {k: (x, index[y]) for k, (x, y) in self.splits.items()}
        return ImageData(splits, list(class_names), self.name)

    @classmethod
    def from_arrays(cls, images, labels, class_names=None, splits=None, name="arrays"):
        """Build from NumPy arrays, holding out test and validation examples.

        Args:
            images: array `(N, height, width)` or `(N, height, width,
                channels)`, uint8 0-255 (floats in 0-1 or 0-255 are scaled).
            labels: array `(N,)` of ints `0..K-1`, or of strings (then
                `class_names` are the sorted distinct strings).
            class_names: list of str or None. Names of labels `0..K-1`.
            splits: dict or None. Already split data, `{"test": (x, y), ...}`,
                added to the split of `images` (which then become "train").
            name: str. A label for messages.

        Example:
        >>> import numpy as np
        >>> data = ImageData.from_arrays(np.zeros((50, 8, 8), "uint8"), np.arange(50) % 2)
        >>> {k: len(v[1]) for k, v in data.splits.items()}
        {'train': 36, 'validation': 4, 'test': 10}
        """
        images = as_uint8_images(images)
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise UserError(f"{len(images)} images but {len(labels)} labels: give one label per image.")
        if labels.dtype.kind in "USO":
            names = sorted(set(labels.tolist()))
            class_names = class_names or names
            index = {n: i for i, n in enumerate(class_names)}
            unknown = sorted(set(names) - set(index))
            if unknown:
                raise UserError(f"Labels {unknown} are not in class_names {class_names}.")
            labels = np.array([index[n] for n in labels.tolist()], dtype="int64")
        labels = labels.astype("int64")
        if class_names is None:
            class_names = [str(i) for i in range(int(labels.max()) + 1 if len(labels) else 0)]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise UserError(
                f"Labels must lie in 0..{len(class_names) - 1} (one per class name); "
                f"received {labels.min()}..{labels.max()}."
            )
        check_classes(labels, class_names, name)
        if splits:
            given = {k: (as_uint8_images(x), np.asarray(y, "int64")) for k, (x, y) in splits.items()}
            return cls(_add_missing_splits({"train": (images, labels), **given}), list(class_names), name)
        return cls(_add_missing_splits({"all": (images, labels)}), list(class_names), name)


def check_classes(labels, class_names, name):
    """At least two classes, each with examples."""
    if len(class_names) < 2:
        raise UserError(
            f"The data {name} has one class only ({', '.join(map(str, class_names)) or 'none'}): "
            "a classifier needs at least two."
        )
    counts = np.bincount(labels, minlength=len(class_names))
    if len(labels) and (counts == 0).any():
        empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
        raise UserError(
            f"The data {name} has no examples of the classes {empty}: add examples or remove them."
        )


def _add_missing_splits(splits):
    """Hold out test (a fifth) and validation (a tenth of the rest) where missing."""
    if "all" in splits:
        splits = {"train": splits.pop("all")}
    images, labels = splits["train"]
    if "test" not in splits:
        rest, test = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
        splits["test"] = (images[test], labels[test])
        images, labels = images[rest], labels[rest]
    if "validation" not in splits:
        rest, validation = stratified_split(labels, VALIDATION_FRACTION, SPLIT_SEED)
        splits["validation"] = (images[validation], labels[validation])
        images, labels = images[rest], labels[rest]
    splits["train"] = (images, labels)
    return {k: splits[k] for k in ("train", "validation", "test")}


def to_channels(images, channels):
    """uint8 images `(..., C)` converted to `channels` (gray <-> RGB, ITU-R 601-2 luma)."""
    have = images.shape[-1]
    if have == channels:
        return images
    if channels == 3 and have == 1:
        return np.repeat(images, 3, axis=-1)
    if channels == 1 and have in (3, 4):
        luma = images[..., :3].astype("float32") @ np.array([0.299, 0.587, 0.114], "float32")
        return np.clip(np.round(luma), 0, 255).astype("uint8")[..., None]
    raise UserError(f"Cannot convert images with {have} channels to {channels}; expected 1 or 3 channels.")


def as_uint8_images(images):
    """NumPy images `(N, H, W)` or `(N, H, W, C)` as uint8 `(N, H, W, C)`."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise UserError(
            f"Expected images of shape (N, height, width) or (N, height, width, 1|3|4); "
            f"received {images.shape}."
        )
    if images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype != np.uint8:
        images = images.astype("float32")
        if images.size and images.max() <= 1.0:
            images = images * 255.0
        images = np.clip(np.round(images), 0, 255).astype("uint8")
    return images


# === Known data sets ===


def load_digits():
    """scikit-learn's digits: 1,797 8x8 gray images (values 0-16 scaled to 0-255)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")
    return ImageData.from_arrays(images, digits.target, [str(i) for i in range(10)], name="digits")


def read_idx(path):
    """One IDX file (gzip or plain) as a NumPy array (uint8 data only)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype != 0x08:
            raise ValueError("not an IDX file of unsigned bytes")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        array = np.frombuffer(data, dtype="uint8", offset=4 + 4 * ndim)
        return array.reshape(shape)
    except (OSError, EOFError, ValueError, struct.error) as error:
        raise UserError(f"Could not read the IDX file {path}: {error}.") from None


def read_fashion_mnist(folder):
    """Fashion-MNIST from a folder of the four published IDX gzip files."""
    folder = Path(folder)

    def pair(prefix):
        images = read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte")).astype("int64")
        if len(images) != len(labels):
            raise UserError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels.")
        return images[..., None], labels

    splits = _add_missing_splits({"train": pair("train"), "test": pair("t10k")})
    return ImageData(splits, list(FASHION_MNIST_CLASSES), name="fashion-mnist")


def _find(folder, stem):
    for name in (stem + ".gz", stem):
        if (folder / name).exists():
            return folder / name
    raise UserError(f"{folder} lacks {stem}.gz: expected the four Fashion-MNIST IDX files as published.")


def is_idx_folder(folder):
    return any(Path(folder).glob("*-images-idx3-ubyte*"))


# === Folders of images ===


def read_image_file(path, image_size=None, channels=None):
    """One image file as uint8 `(height, width, channels)`.

    Args:
        path: str or Path.
        image_size: (height, width) or None. Resize to it by the model's
            rule (`resize_image`).
        channels: 1, 3 or None. Convert to grayscale or RGB (alpha is dropped,
            palettes expanded); None keeps 1 for gray modes and 3 otherwise.

    Raises:
        UserError: when the file is missing or cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"No such image file: {path}.")
    try:
        with Image.open(path) as image:
            if channels is None:
                channels = 1 if image.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
            array = np.asarray(_convert(image, channels), dtype="uint8")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(f"Could not decode the image {path}: {error}.") from None
    array = array.reshape(array.shape[0], array.shape[1], channels)
    return array if image_size is None else resize_image(array, image_size)


def resize_image(image, image_size):
    """A uint8 image `(height, width, channels)` resized to `image_size` as the model resizes.

    The rule of the model's `Resizing` layer (`build_vit`): Keras's bilinear
    resize, no antialiasing, stretched like `image_dataset_from_directory`.
    Image files are resized before the model, by this function, wherever they
    are read (training, evaluation and prediction alike), since images of
    several sizes must share one to be batched; arrays (digits, Fashion-MNIST,
    `from_arrays`) are resized inside the model. Both see the same pixels, but
    for this function's rounding to uint8 (at most half a grey level).
    """
    if tuple(image.shape[:2]) == tuple(image_size):
        return image
    resized = keras.ops.image.resize(image.astype("float32"), tuple(image_size), interpolation="bilinear")
    return np.clip(np.round(keras.ops.convert_to_numpy(resized)), 0, 255).astype("uint8")


def _convert(image, channels):
    if image.mode in ("I", "I;16", "F"):  # 16-bit or float gray: scale to 8 bits.
        values = np.asarray(image, dtype="float32")
        # A 16-bit PNG opens as "I;16": its full scale, whatever this image's values. Plain
        # "I" (32-bit) and "F" say nothing of their scale: 16 bits above 255, else 8.
        sixteen_bits = image.mode == "I;16" or (image.mode == "I" and values.max() > 255)
        top = 65535.0 if sixteen_bits else max(float(values.max()), 255.0)
        from PIL import Image

        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype("uint8"), "L")
    if image.mode in ("P", "PA", "LA", "RGBA") and channels == 3:
        image = image.convert("RGBA").convert("RGB")  # Drop alpha, like decode_image(channels=3).
    return image.convert("L" if channels == 1 else "RGB")


def image_files(folder):
    """`{class name: [files]}` of a folder of class folders (sorted)."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return {
        c.name: sorted(f for f in c.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        for c in classes
    }


def _folder_mode(files):
    """1 when every image is gray, else 3 (read from the headers only)."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:
                if image.mode not in ("1", "L", "LA", "I", "I;16", "F"):
                    return 3
        except Exception:  # Unreadable files are reported when read.
            continue
    return 1


def read_image_folder(folder, image_size=None, channels=None, class_names=None):
    """Read a folder of class folders, or of `train/` `test/` [`validation/`] folders.

    Args:
        folder: str or Path.
        image_size: (height, width) or None. None: the size of the first
            readable image.
        channels: 1, 3 or None. None: 1 if every image is gray, else 3.
        class_names: list of str or None. The expected classes (a model's);
            None: the sorted class folder names.

    Unreadable images are skipped with a warning naming each; a class folder
    without images, or a folder with one class, is a `UserError`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of class folders.")
    split_folders = {s: folder / s for s in ("train", "validation", "test") if (folder / s).is_dir()}
    if "train" in split_folders or "test" in split_folders:
        layout = {split: image_files(path) for split, path in split_folders.items()}
    else:
        layout = {"all": image_files(folder)}
    names = class_names or sorted({c for classes in layout.values() for c in classes})
    all_files = [f for classes in layout.values() for files in classes.values() for f in files]
    if not all_files:
        raise UserError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in class folders of {folder}. Expected "
            f"{folder}/CLASS_NAME/IMAGE files, one folder per class."
        )
    for split, classes in layout.items():
        empty = [c for c, files in classes.items() if not files]
        if empty:
            where = folder if split == "all" else folder / split
            raise UserError(
                f"The class folders {empty} in {where} hold no images: add images or remove them."
            )
        unknown = sorted(set(classes) - set(names))
        if unknown:
            raise UserError(
                f"The data {folder} has labels the model does not know: {unknown}. "
                f"The model's classes are {names}."
            )
    if channels is None:
        channels = _folder_mode(all_files)
    if image_size is None:
        image_size = _first_size(all_files)
    splits, skipped = {}, []
    for split, classes in layout.items():
        images, labels = [], []
        for class_name, files in classes.items():
            for path in files:
                try:
                    images.append(read_image_file(path, image_size, channels))
                    labels.append(names.index(class_name))
                except UserError as error:
                    skipped.append(str(error))
        splits[split] = (
            np.stack(images) if images else np.zeros((0, *image_size, channels), "uint8"),
            np.asarray(labels, dtype="int64"),
        )
    for message in skipped:
        print(f"warning: skipped: {message}", file=sys.stderr)
    if all(len(labels) == 0 for _, labels in splits.values()):
        raise UserError(f"None of the {len(all_files)} images in {folder} could be decoded.")
    if class_names is None:
        check_classes(np.concatenate([y for _, y in splits.values()]), names, str(folder))
    if "all" in splits or "train" in splits:
        splits = _add_missing_splits(splits)
    return ImageData(splits, list(names), name=str(folder))


def _first_size(files):
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:
                return (image.size[1], image.size[0])
        except Exception:
            continue
    raise UserError(f"None of the images, such as {files[0]}, could be decoded.")


# === One entry point ===


def load_data(spec=None, image_size=None, channels=None, class_names=None):
    """Read `--data`: `digits` (the default), `fashion-mnist`, or a path.

    Args:
        spec: str, Path, `ImageData`, `(images, labels)` arrays, or None
            (digits).
        image_size, channels: for folders of images (see `read_image_folder`).
        class_names: the classes of a trained model (evaluation, fine-tuning).
    """
    from applications.common import resolve_data

    if isinstance(spec, ImageData):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return ImageData.from_arrays(*spec)
    path, dataset = resolve_data(spec, KNOWN_DATASETS, default="digits")
    if dataset is DIGITS:
        return load_digits()
    if dataset is FASHION_MNIST or (path.is_dir() and is_idx_folder(path)):
        return read_fashion_mnist(path)
    if path.is_dir():
        return read_image_folder(path, image_size, channels, class_names)
    raise UserError(
        f"--data {path} is a file; expected a folder of class folders of images, a folder of "
        "Fashion-MNIST IDX files, or one of the names digits, fashion-mnist."
    )
