"""The one exception type for errors a user can cause (a bad file, a missing path, a wrong SPEC).

The command line prints its message as one sentence and exits with code 2; the app shows it in the UI.
Anything else is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """An error caused by the user's input; its message is one clear sentence."""
