"""User-facing errors: a short message that says what was wrong and what to do, no traceback."""


class LeedlError(Exception):
    """An error caused by the user's input or environment (bad config, missing data, ...).

    The CLI prints only its message and exits non-zero; the run's results.json records it.
    """


class DataNotFoundError(LeedlError):
    """A data set is not where leedl looked for it and could not be downloaded."""


class IncompatibleModelError(LeedlError):
    """The chosen model cannot be trained on the chosen task."""


class CorruptDataError(LeedlError):
    """A data file is there but cannot be read: cut short, not the format it should be, or damaged."""
