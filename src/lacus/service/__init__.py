"""Use cases: authorisation and validation, one transaction each, calling the core."""

from lacus.service.lake import Lake, Principal, init_lake
from lacus.service.settings import Settings, load_settings

__all__ = ["Lake", "Principal", "Settings", "init_lake", "load_settings"]
