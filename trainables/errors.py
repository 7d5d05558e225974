"""The one exception type for mistakes a user can fix."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in the user's input (a config, a path, a flag, a function's argument).

    The message says what to change. The CLI prints it as one line on stderr and exits with
    code 2; library callers can catch it to tell user mistakes from bugs. It is a
    ``ValueError``, so code that catches bad arguments as ``ValueError`` keeps working.
    """
