"""Secrets: references to values, the masked secret type, redaction, and the credential store.

:mod:`.references` resolves ``{"env": NAME}`` / ``{"secret": NAME}`` references,
holds the masked :class:`Secret` type and the redacting logger; :mod:`.store`
is the encrypted credential store behind ``{"secret": NAME}``.
"""

from connectors.secrets.references import MASK, Secret, is_reference, redact, resolve_config
from connectors.secrets.store import default_store

__all__ = ["MASK", "Secret", "default_store", "is_reference", "redact", "resolve_config"]
