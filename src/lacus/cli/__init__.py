"""The ``lacus`` command line."""
