"""`keras-attention VERB image-classification`: the command-line protocol.

    keras-attention train image-classification                      # digits
    keras-attention train image-classification --data fashion-mnist --output runs/fmnist
    keras-attention train image-classification --data photos/ --image-size 64 --size small
    keras-attention evaluate image-classification --model runs/fmnist --json metrics.json
    keras-attention predict image-classification --model runs/fmnist shoe.png --attention pictures/
    keras-attention finetune image-classification --model runs/fmnist --data photos/ --epochs 10
    keras-attention export image-classification --model runs/fmnist --output serving/fmnist
    keras-attention predict image-classification --model serving/fmnist shoe.png
"""

import argparse

from applications.common.arguments import non_negative_int, positive_int, positive_number

DESCRIPTION = "Vision Transformer image classifier (digits, Fashion-MNIST, folders of images)"
VERBS = ("train", "evaluate", "predict", "finetune", "export")


def _image_size(text):
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",") if p]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, received {text!r}")
    return tuple(parts)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, received {text!r}")
    return value


def _filters(text):
    try:
        filters = tuple(int(f) for f in text.split(",") if f.strip())
    except ValueError:
        filters = ()
    if filters == (0,):
        return ()
    if not filters or min(filters) < 1:
        raise argparse.ArgumentTypeError(f"expected filters like 32,64 (or 0 for no stem), received {text!r}")
    return filters


def add_arguments(parser, verb):
    """The application's own flags for `verb`."""
    if verb in ("train", "finetune", "evaluate"):
        parser.epilog = (
            "--data: digits (the default for train), fashion-mnist, a folder of class folders of images "
            "(or of train/ test/ folders of them), or a folder of Fashion-MNIST IDX files."
        )
    if verb in ("train", "finetune"):
        data = parser.add_argument_group("images (folders of images)")
        data.add_argument("--image-size", type=_image_size, metavar="SIZE",
                          help="resize images to SIZE or HEIGHTxWIDTH (default: the first image's size)")
        data.add_argument("--color-mode", choices=("auto", "grayscale", "rgb"), default="auto",
                          help="gray or RGB input (default auto: gray if every image is)")
        data.add_argument("--max-examples", type=positive_int, metavar="N",
                          help="train on the first N examples only")
        model = parser.add_argument_group("model (default: the data set's recipe)")
        model.add_argument("--size", choices=("micro", "tiny", "small", "base", "large"), help="named ViT size")
        model.add_argument("--patch-size", type=positive_int)
        model.add_argument("--pooling", choices=("cls", "mean"), help="class token or mean of patch tokens")
        model.add_argument("--stem-filters", type=_filters, metavar="F,F",
                           help="a convolutional stem: the filters of each stride-2 layer (0: none)")
        model.add_argument("--hidden-dim", type=positive_int)
        model.add_argument("--num-layers", type=positive_int)
        model.add_argument("--num-heads", type=positive_int)
        model.add_argument("--intermediate-dim", type=positive_int)
        model.add_argument("--dropout", type=_fraction)
        model.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction,
                           help="predict the mean over each image and its mirror image")
        training = parser.add_argument_group("training")
        training.add_argument("--learning-rate", type=positive_number, help="peak of the warmup-cosine schedule")
        training.add_argument("--warmup-epochs", type=non_negative_int)
        training.add_argument("--weight-decay", type=_fraction)
        training.add_argument("--label-smoothing", type=_fraction)
        augmentation = parser.add_argument_group("augmentation")
        augmentation.add_argument("--translate", type=_fraction, help="random shift, a fraction of the size")
        augmentation.add_argument("--rotate", type=_fraction, help="random rotation, a fraction of a turn")
        augmentation.add_argument("--zoom", type=_fraction, help="random zoom in or out, a fraction")
        augmentation.add_argument("--flip", action=argparse.BooleanOptionalAction,
                                  help="random left-right flips")
        augmentation.add_argument("--erase", type=_fraction, metavar="P",
                                  help="random erasing: the probability of a noise rectangle per image")
        augmentation.add_argument("--rand-augment", action=argparse.BooleanOptionalAction, help="RandAugment")
        augmentation.add_argument("--mixup", type=_fraction, metavar="ALPHA", help="MixUp with this alpha")
        augmentation.add_argument("--cutmix", type=_fraction, metavar="FACTOR",
                                  help="CutMix with this factor")
    if verb == "predict":
        parser.add_argument("files", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
        parser.add_argument("--top-k", type=positive_int, default=3, help="labels to show per image (default: 3)")
        parser.add_argument("--attention", metavar="DIR",
                            help="write an attention-rollout picture per image to DIR")


_MODEL_FLAGS = ("size", "patch_size", "pooling", "stem_filters", "hidden_dim", "num_layers", "num_heads",
                "intermediate_dim", "dropout", "test_time_flip")
_TRAINING_FLAGS = ("learning_rate", "warmup_epochs", "weight_decay", "label_smoothing",
                   "translate", "rotate", "zoom", "flip", "erase", "rand_augment", "mixup",
                   "cutmix")


def run(verb, args):
    """Do `verb`; returns the results the command prints."""
    from applications.image_classification import evaluation, recipe

    if verb in ("train", "finetune"):
        overrides = {k: getattr(args, k) for k in _MODEL_FLAGS + _TRAINING_FLAGS}
        if verb == "finetune":
            overrides = {k: v for k, v in overrides.items() if k not in _MODEL_FLAGS}
        common = dict(
            output=args.output, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
            resume=args.resume, overwrite=args.overwrite, quiet=args.quiet, image_size=args.image_size,
            color_mode=args.color_mode, max_examples=args.max_examples, **overrides,
        )
        if verb == "train":
            return recipe.train(args.data, **common)
        from applications.common import FineTuning

        return recipe.finetune(args.model, args.data, finetuning=FineTuning.from_args(args), **common)
    if verb == "evaluate":
        return evaluation.evaluate(args.model, args.data, args.split, batch_size=args.batch_size or 256)
    if verb == "predict":
        return evaluation.predict(args.model, args.files, top_k=args.top_k, attention_dir=args.attention,
                                  batch_size=args.batch_size or 32)
    if verb == "export":
        return evaluation.export(args.model, args.output, overwrite=args.overwrite)
    raise ValueError(f"Unknown verb: {verb!r}. Expected one of {VERBS}.")
