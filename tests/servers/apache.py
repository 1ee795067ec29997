"""apache: filled in by the storage backend work (issue 5)."""
