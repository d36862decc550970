"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """A mistake in the user's input (bad file, option, name): printed without a traceback.

    ``exit_code`` is the process exit status (2 by default).
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
