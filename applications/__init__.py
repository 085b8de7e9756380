"""Ready applications built on `keras_attention`.

Each application lives in its own package (`applications.image_classification`,
`applications.text_classification`, ...) and is driven from Python or from the
`keras-attention` command (`applications.cli`). What every application shares
(data directory, downloads, run folders, training loop callbacks, export,
errors) lives in `applications.common`; see its docstring for the contract.

`applications` imports `keras_attention`, never the reverse, and one
application never imports another.
"""
