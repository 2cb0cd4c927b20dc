"""The refusals of the data plane: too large, not found, conflicting upload, unreadable or unreachable source.

Each is a ``DomainError`` (see ``datafactor.errors``), so the web layer translates it and the API
renders it as problem+json; the ``code`` says which of several causes applied (``binary-file``,
``line-too-long``, ``macro-workbook``, ``zip-bomb`` ...) so callers and tests can branch on it
without parsing the message. Messages never contain credentials: database URLs pass through
``redact_url`` before they reach a message or a log line.
"""

from __future__ import annotations

from datafactor.errors import N_, Conflict, DomainError, InvalidInput, NotFound


class BlobTooLarge(DomainError):
    """An upload is larger than the configured limit; nothing of it was kept."""

    status = 413
    code = "too-large"
    title = N_("The upload is too large")


class BlobNotFound(NotFound):
    """No blob with this digest is stored (or the upload session does not exist)."""

    code = "blob-not-found"


class UploadConflict(Conflict):
    """A chunk does not fit the upload's current state (wrong offset, different bytes, incomplete)."""

    code = "upload-conflict"


class UnreadableSource(InvalidInput):
    """A file cannot be read as the format it claims; ``code`` names the reason."""

    code = "unreadable-source"
    title = N_("The file cannot be read")


class SourceUnavailable(DomainError):
    """A live database could not be reached or queried; the message names it with its password hidden."""

    status = 502
    code = "source-unavailable"
    title = N_("The data source cannot be reached")
