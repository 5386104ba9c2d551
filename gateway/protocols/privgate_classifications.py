"""privgate's `POST /v1/classifications`, served by secure backends with a classifier head only.

The body is an embeddings body (`model`, `input`: a string or a list of strings), rewritten the same way;
the answer holds labels and probabilities, with nothing to restore. No cloud serves it, so a cloud
domain answers 404 before anything is read.
"""

from __future__ import annotations

from gateway.protocols.openai_embeddings import StreamTap, extract, restore_json, vendor

upstream = "secure"  # Runtime.upstream_for: only a domain with a secure backend has one

__all__ = ["StreamTap", "extract", "restore_json", "upstream", "vendor"]
