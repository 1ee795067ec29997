"""The Lacus client: catalog calls over REST, verified uploads and downloads."""

from lacus.client._client import Client
from lacus.client.config import ClientConfig, load_config, save_config

__all__ = ["Client", "ClientConfig", "load_config", "save_config"]
