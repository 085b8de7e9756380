"""The one error type for a user's mistake."""


class UserError(ValueError):
    """A mistake in the user's input: a missing or empty file, undecodable
    data, one class only, a label the model does not know, a bad flag value.

    The `keras-attention` command prints its message as one line on stderr and
    exits with status 1, without a traceback. The message says what was
    received, what was expected and how to fix it.
    """
