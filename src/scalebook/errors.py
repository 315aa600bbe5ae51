"""Errors that reach the user as a message, not a traceback.

Everything the user can cause (a malformed table, a bad parameter, a fit that does not
converge) raises a subclass of `ScalebookError`; the CLI prints its message and exits
non-zero. Each subclass is also a `ValueError` so library callers can catch it naturally.
"""


class ScalebookError(Exception):
    """Base class: the message is written for the user and says what to fix."""

    exit_code = 2


class DataError(ScalebookError, ValueError):
    """A table is missing, unreadable, or violates its declared schema."""


class ParameterError(ScalebookError, ValueError):
    """A notebook parameter is unknown, of the wrong type, or out of range."""


class FitError(ScalebookError, RuntimeError):
    """A fit did not converge or a statistic is undefined for the given data."""


class RunError(ScalebookError, RuntimeError):
    """A notebook run failed; the message names the failing cell."""

    exit_code = 1


def format_rows(rows, limit=5):
    """Render row numbers (1-based data rows) as 'rows 3, 7, 12 and 4 more'."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = len(rows) - limit
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}" + (f" and {more} more" if more > 0 else "")
