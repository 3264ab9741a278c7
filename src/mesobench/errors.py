"""Exceptions with messages a user can act on.

Every error that reaches a user through the runner derives from :class:`MesobenchError`, so the
runner can tell "your input is wrong" (recorded as a FAILED run with the message) from a bug.
Messages say what was wrong *and* what to do about it.
"""

from __future__ import annotations

from sklearn.utils._param_validation import InvalidParameterError as SklearnInvalidParameterError


class MesobenchError(Exception):
    """Base class for errors caused by input, configuration or data rather than by a bug."""


class ConfigError(MesobenchError):
    """A configuration value is missing, unknown or inconsistent."""


class DataError(MesobenchError, ValueError):
    """The data cannot be used as given (missing column, no usable feature, empty fold...).

    Also a ``ValueError``, as scikit-learn raises for unusable data (e.g. one class only), so
    code written for scikit-learn estimators catches it."""


class TaskNotAvailableError(MesobenchError):
    """An OpenML task is neither in the local cache nor downloadable (offline)."""


class DivergenceError(MesobenchError):
    """Training produced a non-finite loss; the run is recorded as FAILED with this reason."""


class InvalidParameterError(ConfigError, SklearnInvalidParameterError):
    """An estimator's constructor parameter has an invalid value (checked at ``fit``, before any
    training step).

    scikit-learn's own ``InvalidParameterError`` (a ``ValueError``), so code written for
    scikit-learn estimators catches it, and a :class:`ConfigError`, so the runner records the
    run as FAILED with the message.
    """


class AttributionUnavailableError(MesobenchError, ValueError):
    """A fitted model cannot give exact attributions for these rows (e.g. interventional
    TreeSHAP beyond what the library computes exactly). The runner keeps the run, records no
    fidelity metrics for it and notes why, rather than logging inexact values."""
