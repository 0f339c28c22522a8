"""Errors raised by ingest, each with a short machine-readable reason for reject counts."""


class IngestError(Exception):
    """Base class for ingest failures."""


class RecordError(IngestError, ValueError):
    """One source record could not be parsed; `reason` keys the reject counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SourceError(IngestError):
    """The source (Hub or snapshot) failed for good, after retries."""
