"""privgate's HTTP gateway: a drop-in OpenAI/Anthropic proxy that protects what leaves the machine."""

from gateway.app import create_app
from gateway.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
