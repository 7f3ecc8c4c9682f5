"""Typed errors raised across umr.

Every error names the thing that is wrong (a file, an item's index, a field) so a
user can act on the message alone. Input errors also subclass the matching
builtin (``ValueError``/``TypeError``) so generic handlers keep working.
"""

from __future__ import annotations


class UmrError(Exception):
    """Base class of every error umr raises on purpose."""


class BundleError(UmrError):
    """A bundle directory is missing, malformed or does not match its manifest."""


class ManifestError(BundleError, ValueError):
    """``umr.json`` is missing a field, has a wrong type, or an unknown format version."""


class ChecksumError(BundleError):
    """A file's sha256 differs from the one recorded in its manifest (tampered or corrupt)."""


class UnknownVariantError(BundleError, KeyError):
    """The requested variant is not in the bundle; the message lists the ones that are."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ProviderUnavailableError(UmrError, RuntimeError):
    """The execution provider asked for is not installed or not usable on this machine."""


class ExportError(UmrError):
    """Exporting a model to a bundle failed (bad source model, failed parity, ...)."""


class ParityError(ExportError):
    """An exported graph disagrees with its reference beyond the stated tolerance."""


class InputTypeError(UmrError, TypeError):
    """An input item has the wrong type; the message names its index."""


class InputValueError(UmrError, ValueError):
    """An input item has a bad value (lone surrogate, NaN, wrong shape); names its index."""


class IndexError_(UmrError):
    """Base class of vector-index errors (named with a trailing underscore to
    avoid shadowing the builtin ``IndexError``)."""


class IndexCorruptError(IndexError_, ValueError):
    """An index file or its manifest is missing, truncated, or fails verification."""


class DuplicateIdError(IndexError_, ValueError):
    """An id being added already exists in the index (or twice in one call)."""


class UnknownIdError(IndexError_, KeyError):
    """An id being deleted or fetched is not in the index."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataError(UmrError):
    """A dataset or one of its records is unusable; the message names the file and line."""


class RecordError(DataError, ValueError):
    """A JSONL record is malformed: ``path:line: field: what was expected``."""


class FetchError(DataError):
    """A source package could not be fetched or failed its checksum (npm missing, bad tarball)."""


class ImageError(UmrError, ValueError):
    """An image cannot be decoded or is refused (corrupt, truncated, unsupported, too big)."""


class ConfigError(UmrError, ValueError):
    """A model config or training recipe is malformed or names something unknown."""


class CheckpointError(UmrError):
    """A checkpoint is missing a file, fails its checksum, or does not match its config."""


class ServerError(UmrError):
    """The HTTP server cannot start with the given settings."""


class BackendError(IndexError_):
    """An index backend is unknown, not installed, or unreachable; says which exist."""
