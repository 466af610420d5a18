"""The one exception type for errors a user can cause (bad files, bad configs, bad paths).

The CLI prints its message as one line and exits non-zero; programming errors stay
ordinary exceptions so their tracebacks reach the developer.
"""


class AvstanError(Exception):
    """A problem with the user's input: the message names the thing and what to do."""
