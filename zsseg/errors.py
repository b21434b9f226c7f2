"""The errors a stage reports as bad input: one line naming the file, key or value, and exit status 2.

Every module's own error type derives from :class:`InputError`, so the shared stage setup catches
them all without importing the modules that raise them.
"""


class InputError(ValueError):
    """Bad input: the message names the file, key or value at fault and what was expected."""


class NumericalError(FloatingPointError):
    """A loss, generated feature or logit became NaN or Inf."""
