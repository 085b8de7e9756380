"""The Vision Transformer: raw uint8 images in, class probabilities out.

    pixel_values (B, H', W', C) uint8, any H', W'
    -> Rescaling to [-1, 1] -> Resizing to the trained (H, W)
    -> PatchEmbedding (P = H/p * W/p patch tokens, + a class token for "cls")
    -> num_layers x TransformerEncoder (pre-norm) -> LayerNormalization
    -> ClassificationHead ("cls" or "mean" pooling, softmax) -> (B, num_classes)

With `test_time_flip`, a `MirrorAverage` pair around the network averages, at
inference, the probabilities of each image and of its mirror image.

Every layer is a registered keras layer, so the model reloads from `.keras`
with `safe_mode=True` and no `custom_objects`.
"""

import keras

from applications.common import UserError
from applications.image_classification.mirror_average import MirrorAverage
from keras_attention.heads import ClassificationHead
from keras_attention.layers import PatchEmbedding, TransformerEncoder

# Named sizes. Tokens per image = (image side / patch_size)^2 (+1 class token).
VIT_SIZES = {
    # For tests and smoke runs: a few thousand weights.
    "micro": dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32),
    # digits in a minute or two on 2 CPU cores: ~135k weights.
    "tiny": dict(hidden_dim=64, num_layers=4, num_heads=4, intermediate_dim=128),
    # Fashion-MNIST: ~0.8M weights.
    "small": dict(hidden_dim=128, num_layers=6, num_heads=4, intermediate_dim=256),
    # ViT-Ti-like width, for larger images and more compute: ~5M weights.
    "base": dict(hidden_dim=192, num_layers=12, num_heads=3, intermediate_dim=768),
    # ViT-S widths, for a GPU: ~21M weights.
    "large": dict(hidden_dim=384, num_layers=12, num_heads=6, intermediate_dim=1536),
}
# Everything `build_vit` accepts besides the image shape and class count.
DEFAULTS = dict(
    size="tiny",
    image_size=None,  # (height, width) the model works at; None: the input's.
    patch_size=None,  # None: a side / 8 patch grid (8x8 images: patch 1).
    pooling="cls",  # "cls" (class token) or "mean" (mean of patch tokens).
    stem_filters=(),  # Stride-2 3x3 convolutions before the patch projection (); none: plain patchify.
    dropout=0.0,  # In the encoder blocks (attention and feed-forward).
    head_dropout=0.0,  # Before the output projection.
    test_time_flip=False,  # Predict the mean of each image's and its mirror image's probabilities.
    hidden_dim=None, num_layers=None, num_heads=None, intermediate_dim=None,  # None: the size's.
)
POOLINGS = ("cls", "mean")


def vit_settings(**settings):
    """The complete, validated settings of a ViT (named size filled in).

    Example:
    >>> vit_settings(size="tiny", patch_size=2)["hidden_dim"]
    64
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise UserError(f"Unknown ViT settings {unknown}. Expected some of {sorted(DEFAULTS)}.")
    merged = {**DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
    if merged["size"] not in VIT_SIZES:
        raise UserError(f"Unknown size: {merged['size']!r}. Expected one of {list(VIT_SIZES)}.")
    for key, value in VIT_SIZES[merged["size"]].items():
        if merged[key] is None:
            merged[key] = value
    if merged["pooling"] not in POOLINGS:
        raise UserError(f"Unknown pooling: {merged['pooling']!r}. Expected one of {POOLINGS}.")
    # Checked here, before the run folder exists: a zero would fail deep in the layers, or
    # (num_layers) only after a whole training run, when the attention rollout finds no block.
    for key in ("hidden_dim", "num_layers", "num_heads", "intermediate_dim", "patch_size"):
        value = merged[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{key}={value!r}: expected a positive whole number (--{key.replace('_', '-')}).")
    for key in ("dropout", "head_dropout"):
        if not 0 <= merged[key] < 1:
            raise UserError(f"{key}={merged[key]!r}: expected a rate in [0, 1).")
    if merged["hidden_dim"] % merged["num_heads"]:
        raise UserError(
            f"hidden_dim={merged['hidden_dim']} is not divisible by num_heads={merged['num_heads']}: "
            "choose a hidden_dim that is a multiple of num_heads."
        )
    return merged


def patch_size_for(image_size, settings):
    """The patch side of a ViT of `settings` (from `vit_settings`) at `image_size` (height, width).

    The `patch_size` setting, else the side that makes about an 8x8 grid.

    Example:
    >>> patch_size_for((32, 32), vit_settings())
    4
    """
    height, width = image_size
    return settings["patch_size"] or max(min(height, width) // 8, 1)


def check_image_size(image_size, settings):
    """A `UserError` unless the patches of `settings` tile images of `image_size` (height, width).

    `train` calls it before its run folder exists, so the flags' mistake leaves nothing behind
    (the layer would only refuse the size when the model is built).

    Example:
    >>> check_image_size((1, 1), vit_settings(patch_size=2))
    Traceback (most recent call last):
    ...
    applications.common.errors.UserError: The image size 1x1 is not divisible by the patch size 2: ...
    """
    height, width = image_size
    patch_size = patch_size_for(image_size, settings)
    if height % patch_size or width % patch_size:
        fit_height = max(height // patch_size, 1) * patch_size
        fit_width = max(width // patch_size, 1) * patch_size
        raise UserError(
            f"The image size {height}x{width} is not divisible by the patch size {patch_size}: "
            f"give --image-size {fit_height}x{fit_width} (or another multiple of the patch size), "
            "or a --patch-size that divides both sides."
        )


def build_vit(image_shape, num_classes, **settings):
    """Build and compile a Vision Transformer classifier.

    Args:
        image_shape: tuple `(height, width, channels)`, channels 1 or 3. The
            size the model is trained at (unless `image_size` is given); it
            takes uint8 images of any size and resizes them.
        num_classes: int. Number of classes (at least 2).
        **settings: any of `size` (`"micro"`, `"tiny"`, `"small"`, `"base"`;
            defaults to `"tiny"`), `image_size`, `patch_size`, `pooling`
            (`"cls"` or `"mean"`), `stem_filters` (a convolutional stem, see
            `PatchEmbedding`), `dropout`, `head_dropout`, `test_time_flip`
            (average the predictions over each image and its mirror image at
            inference, see `MirrorAverage`), `hidden_dim`,
            `num_layers`, `num_heads`, `intermediate_dim` (these four default to
            the size's).

    Returns:
        A `keras.Model` from `pixel_values` (uint8) to probabilities
        `(B, num_classes)`, compiled with AdamW and categorical cross-entropy
        (one-hot labels), so `fit` runs as is.

    Example:
    >>> from applications.image_classification import build_vit
    >>> model = build_vit((8, 8, 1), num_classes=10, size="micro", patch_size=2)
    >>> model.output_shape
    (None, 10)
    """
    settings = vit_settings(**settings)
    height, width, channels = image_shape
    if channels not in (1, 3):
        raise ValueError(f"Images must have 1 or 3 channels. Received: image_shape={image_shape}.")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: num_classes={num_classes}.")
    height, width = settings["image_size"] or (height, width)
    check_image_size((height, width), settings)
    patch_size = patch_size_for((height, width), settings)

    # === Layers ===
    rescaling = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")
    # Bilinear, no antialiasing: the rule `data.resize_image` applies to image files before
    # batching, so that files and arrays reach the patches resized alike.
    resizing = keras.layers.Resizing(height, width, interpolation="bilinear", name="resizing")
    try:
        patch_embedding = PatchEmbedding(
            patch_size=patch_size,
            hidden_dim=settings["hidden_dim"],
            use_class_token=settings["pooling"] == "cls",
            stem_filters=tuple(settings["stem_filters"]),
            name="patch_embedding",
        )
    except ValueError as error:  # A patch size and stem that do not fit: the flags' mistake.
        raise UserError(str(error)) from None
    encoder_layers = [
        TransformerEncoder(
            intermediate_dim=settings["intermediate_dim"],
            num_heads=settings["num_heads"],
            dropout=settings["dropout"],
            activation="gelu",
            normalize_first=True,
            name=f"encoder_layer_{i}",
        )
        for i in range(settings["num_layers"])
    ]
    final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")
    head = ClassificationHead(
        num_classes,
        pooling=settings["pooling"],
        activation="softmax",
        dropout=settings["head_dropout"],
        name="head",
    )

    if settings["test_time_flip"]:
        mirror_split = MirrorAverage("split", name="mirror_split")
        # Probabilities are averaged in float32 whatever the dtype policy.
        mirror_merge = MirrorAverage("merge", name="mirror_merge", dtype="float32")

    # === Functional Model ===
    pixel_values = keras.Input(shape=(None, None, channels), dtype="uint8", name="pixel_values")
    x = rescaling(pixel_values)
    # training=False: Resizing's call defaults to training=True, which a call
    # without `training` (`model(images)`, `model.export`) would pass on to the
    # dropout layers after it.
    x = resizing(x, training=False)  # [B, H, W, C]
    if settings["test_time_flip"]:
        x = mirror_split(x)  # [2B, H, W, C] at inference
    x = patch_embedding(x)  # [B, T, D]
    for encoder_layer in encoder_layers:
        x = encoder_layer(x)  # [B, T, D]
    x = final_norm(x)
    probabilities = head(x)  # [B, num_classes]
    if settings["test_time_flip"]:
        probabilities = mirror_merge(probabilities)  # [B, num_classes]
    model = keras.Model(pixel_values, probabilities, name="vit_classifier")

    # === Config ===
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.05),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    return model


def image_size_of(model):
    """The (height, width) a ViT built by `build_vit` works at."""
    resizing = model.get_layer("resizing")
    return (resizing.height, resizing.width)


def channels_of(model):
    return int(model.inputs[0].shape[-1])
