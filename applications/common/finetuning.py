"""`finetune --method`: what each fine-tuning method changes in a run, written once.

Every application calls, in this order:

    tuning = FineTuning(method, layer_decay=..., lora_rank=..., lora_targets=...)   # from the flags
    tuning.prepare(training_model, head=("head",))   # before compile: freezes, adapters
    model.compile(optimizer=tuning.optimizer(optimizer), ...)
    fit(..., callbacks=[*callbacks, *tuning.callbacks])
    metrics.update(tuning.metrics)                   # method, trainable fraction
    tuning.export(serving_model).save(...)           # LoRA merged into plain weights

The methods (`keras_attention.finetune` does the work):
- `full`: every weight trains (what `train` does to a new model).
- `frozen`: only the head trains; the encoder stays exactly as it was.
- `gradual`: the head first, then one more block from the top each epoch
  (`GradualUnfreezing`; TensorFlow and PyTorch backends).
- `layerwise`: every weight trains, block `i` from the top at the rate times
  `layer_decay ** (i + 1)` (`layerwise_optimizer`).
- `lora`: rank-`lora_rank` adapters on the `lora_targets` layers (the query and
  value projections of the attention layers by default; embedding tables by
  name), the head in full, the rest frozen (`apply_lora`);
  `export` folds the adapters into plain kernels (`merge_lora`).

Blocks are the layers named `encoder_N`, `encoder_layer_N`, `decoder_N` or
`decoder_layer_N` (decoder above encoder, higher N above lower); what is in
neither a block nor the head (embeddings, final norms) is the bottom group.
"""

import math
import re

import keras

from applications.common.arguments import METHODS
from applications.common.errors import UserError

_BLOCK = re.compile(r"^(encoder|decoder)(?:_layer)?_(\d+)$")


class FineTuning:
    """The fine-tuning method of a run (see the module docstring).

    Args:
        method: str. One of `METHODS`. Defaults to `"full"`.
        layer_decay: float in (0, 1]. `layerwise`: the rate ratio between
            adjacent blocks. Defaults to 0.75.
        lora_rank: int. `lora`: the adapters' rank. Defaults to 8.
        lora_targets: tuple of str. `lora`: names or path patterns of the
            layers that get adapters. Defaults to `None`, which means
            `apply_lora`'s: the query and value projections.
    """

    def __init__(self, method="full", layer_decay=0.75, lora_rank=8, lora_targets=None):
        if method not in METHODS:
            raise UserError(f"Unknown --method {method!r}. Expected one of {', '.join(METHODS)}.")
        if method == "gradual" and keras.backend.backend() == "jax":
            raise UserError(
                "--method gradual needs the TensorFlow or PyTorch backend: the JAX training loop fixes the "
                "trainable weights when fit() starts. Set KERAS_BACKEND=tensorflow, or use --method layerwise."
            )
        self.method = method
        self.layer_decay = layer_decay
        self.lora_rank = lora_rank
        self.lora_targets = lora_targets
        self.callbacks = []
        self.metrics = {"method": method}
        self._groups = None
        self._float16 = False

    @classmethod
    def from_args(cls, args):
        """The method of the parsed flags (`full` for `train`, which has no `--method`)."""
        return cls(getattr(args, "method", "full"), getattr(args, "layer_decay", 0.75),
                   getattr(args, "lora_rank", 8), getattr(args, "lora_targets", None))

    def prepare(self, model, head):
        """Freeze or adapt `model` for the method; call before `compile`.

        Args:
            model: the built model that will be fitted.
            head: tuple of str. Names of the head layers (the layers a new
                task trains from scratch).
        """
        from keras_attention.finetune import GradualUnfreezing, apply_lora, freeze, unfreeze
        from keras_attention.finetune.lora import DEFAULT_TARGETS

        head = list(head)
        policy = keras.config.dtype_policy().name
        saved = sorted({layer.dtype_policy.name for layer in model._flatten_layers(include_self=False)
                        if layer.dtype_policy.name in ("float32", "mixed_float16", "mixed_bfloat16")})
        if saved and saved != [policy]:
            # Each layer of a saved model carries its dtype policy; only new layers follow --precision.
            print(f"Note: the model computes in {', '.join(saved)} as it was trained; new layers use {policy}.")
        # A model saved by a `frozen` or `gradual` run may hold frozen layers: every method
        # starts from all of them trainable (`full` means every weight).
        unfreeze(model)
        self._groups = block_groups(model, head)
        if self.method == "frozen":
            freeze(model)
            unfreeze(model, head)
        elif self.method == "gradual":
            self.callbacks = [GradualUnfreezing(self._groups)]
        elif self.method == "lora":
            targets = tuple(self.lora_targets or DEFAULT_TARGETS)
            try:
                apply_lora(model, self.lora_rank, targets=targets, keep_trainable=head)
            except ValueError as error:
                raise UserError(f"--method lora: {error}") from None
            self.metrics.update(lora_rank=self.lora_rank, lora_targets=list(targets))
        if self.method in ("frozen", "lora"):
            # Keeping the head trainable kept what a tied head only borrows (`head_layers`).
            for layer in head_layers(model, head)[1]:
                layer.trainable = False
        # Loaded layers keep their saved policies whatever --precision is (see `optimizer`).
        self._float16 = any(layer.dtype_policy.compute_dtype == "float16"
                            for layer in model._flatten_layers(include_self=False))
        # Before training: under `gradual`, every weight that will train.
        trainable = _count(model.trainable_weights)
        total = _count(model.weights)
        self.metrics.update(trainable_parameters=trainable, total_parameters=total,
                            trainable_fraction=round(trainable / max(total, 1), 6))

    def optimizer(self, optimizer):
        """The optimizer to compile with: `optimizer`, or its layer-wise form, loss-scaled
        when the prepared model has float16 layers."""
        from keras_attention.finetune import layerwise_optimizer

        if self.method == "layerwise":
            if self._groups is None:
                raise ValueError("Call FineTuning.prepare(model, head) before FineTuning.optimizer(...).")
            optimizer = layerwise_optimizer(optimizer, self._groups, self.layer_decay)
        if self._float16 and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            # `Model.compile` scales the loss only when the model's own policy is mixed_float16: a
            # model trained under it and fine-tuned under --precision float32 keeps its float16
            # layers, whose small gradients would underflow unscaled. Named as compile names it.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
        return optimizer

    def export(self, model):
        """The model to save, all trainable: with LoRA, a copy with the adapters merged in."""
        from keras_attention.finetune import merge_lora, unfreeze

        if self.method == "lora":
            return merge_lora(model)
        unfreeze(model)  # Saved as a model to go on training, not frozen.
        return model


def block_groups(model, head):
    """Layer groups of `model` from the top down, each a list of layer-path patterns.

    One group per block name (`encoder_3`, `decoder_layer_0`, ...; all
    layers of that name together, e.g. the members of an ensemble), decoder
    blocks above encoder blocks, higher indices above lower; then one group
    of every other layer with weights, outside the head (embeddings, norms).
    """
    layers = list(model._flatten_layers(include_self=False))
    in_head, _ = head_layers(model, head)
    blocks = {}
    for layer in layers:
        match = _BLOCK.match(layer.name)
        if match and id(layer) not in in_head:
            blocks[layer.name] = (match.group(1) == "decoder", int(match.group(2)))
    in_blocks = {id(inner) for layer in layers if layer.name in blocks
                 for inner in layer._flatten_layers(include_self=True)}
    rest = [
        layer.path for layer in layers
        if layer.trainable_weights and not list(layer._flatten_layers(include_self=False))  # Leaves.
        and id(layer) not in in_head and id(layer) not in in_blocks
    ]
    groups = [[f"*{name}"] for name in sorted(blocks, key=blocks.get, reverse=True)]
    if rest:
        groups.append(sorted(set(rest)))
    if not groups:
        raise UserError(f"The model has nothing outside its head {head} to fine-tune.")
    return groups


def head_layers(model, head):
    """The head's layers: `(ids of the layers it owns, the layers it only borrows)`.

    The layers named in `head` own their sublayers, except what a tied
    `LanguageModelHead` borrows: it tracks the whole embedding layer it ties
    to (a `TokenAndPositionEmbedding`: the position table too), while only
    the token table is the head's weight. The rest of that layer belongs
    with the embeddings below the blocks.
    """
    from keras_attention.heads import LanguageModelHead
    from keras_attention.heads.language_model_head import tied_embedding

    owned, borrowed = set(), {}
    for layer in model._flatten_layers(include_self=False):
        if layer.name not in head:
            continue
        owned |= {id(inner) for inner in layer._flatten_layers(include_self=True)}
        if isinstance(layer, LanguageModelHead) and layer.embedding is not None:
            token_table = tied_embedding(layer.embedding)
            token_table = {id(inner) for inner in token_table._flatten_layers(include_self=True)}
            borrowed.update({id(inner): inner for inner in layer.embedding._flatten_layers(include_self=True)
                             if id(inner) not in token_table
                             and not list(inner._flatten_layers(include_self=False))})  # Leaves.
    return owned - set(borrowed), list(borrowed.values())


def with_new_head(model, num_classes, head="head", features="final_norm"):
    """`model` with its classification head replaced by a fresh one for `num_classes` classes.

    The new head is built from the old one's config (pooling, dropout,
    activation, dtype and name kept), on the output of the layer `features`;
    the layers that followed the old head up to the output (weightless ones,
    such as the image classifier's `mirror_merge`) follow it, in that order.
    `model` is one loaded from disk, so that layer has a single call and its
    `.output` is what the old head read.
    """
    old_head = model.get_layer(head)
    new_head = old_head.__class__.from_config({**old_head.get_config(), "num_classes": num_classes})
    outputs = new_head(model.get_layer(features).output)
    for layer in model.layers[model.layers.index(old_head) + 1:]:
        outputs = layer(outputs)
    return keras.Model(model.inputs, outputs, name=model.name)


def _count(variables):
    """Parameters in `variables`, each shared variable once (e.g. tied embeddings)."""
    unique = {id(variable): variable for variable in variables}
    return int(sum(math.prod(variable.shape) for variable in unique.values()))
