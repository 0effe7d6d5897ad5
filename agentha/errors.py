"""The command line's own error: a one-line message and the exit code to leave with."""


class CommandError(Exception):
    """A problem the user can fix; printed as one line, never with a traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
