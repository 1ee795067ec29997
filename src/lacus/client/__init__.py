"""The Lacus client: catalog calls over REST, verified uploads and downloads."""

from lacus.client._client import Client
from lacus.client.config import ClientConfig, load_config, save_config
from lacus.client.events import Event, NewFile, follow_files

__all__ = [
    "Client",
    "ClientConfig",
    "Event",
    "NewFile",
    "follow_files",
    "load_config",
    "save_config",
]
