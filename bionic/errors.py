"""User-facing errors: one line that says what was wrong and what to do."""


class BionicError(Exception):
    """A user-facing error: one line saying what was wrong and what to do."""
