"""One adapter per wire format, each a module with the same surface:

`vendor`, `upstream`, `extract(body) -> Extraction`, `restore_json(body, restorer)`, `StreamTap(restorer)`.
"""

from types import ModuleType

from gateway.protocols import (
    anthropic_messages,
    openai_chat,
    openai_embeddings,
    openai_responses,
    privgate_classifications,
)

ADAPTERS: dict[str, ModuleType] = {
    "/v1/chat/completions": openai_chat,
    "/v1/responses": openai_responses,
    "/v1/messages": anthropic_messages,
    "/v1/messages/count_tokens": anthropic_messages,  # the same body: it reaches the vendor too
    "/v1/embeddings": openai_embeddings,
    "/v1/classifications": privgate_classifications,  # secure backends with a classifier head only
}

__all__ = ["ADAPTERS"]
