"""The interface the gateway uses to serve a request on a secure backend instead of a cloud upstream.

A backend speaks OpenAI's wire shapes (chat.completion, chat.completion.chunk, embeddings list) so the
gateway's adapters, restoration and audit work unchanged; only the transport differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

Json = dict[str, Any]


class BackendError(RuntimeError):
    """The backend could not serve the request (a party died, attestation was refused, a timeout).

    The message is shown to the client: it must never carry request text.
    """


class BackendUnsupported(BackendError):
    """The backend has no such operation or model (e.g. chat on an embeddings-only MPC model)."""


@runtime_checkable
class SecureBackend(Protocol):
    name: str  # "mpc" or "tee": written into the audit record

    def models(self) -> list[str]:
        """Model names this backend serves, as a client writes them in `model`."""
        ...

    async def chat(self, body: Json, facts: Json) -> Json:
        """An OpenAI chat.completion for an OpenAI chat-completions request body.

        `facts` is filled with what the audit record should keep (measurement, timings, bytes).
        """
        ...

    def chat_stream(self, body: Json, facts: Json) -> AsyncIterator[Json]:
        """The same answer as chat.completion.chunk objects, one per generated token or so."""
        ...

    async def embeddings(self, body: Json, facts: Json) -> Json:
        """An OpenAI embeddings list for an OpenAI embeddings request body."""
        ...

    async def aclose(self) -> None:
        """Stop every process the backend started; called once at gateway shutdown."""
        ...
