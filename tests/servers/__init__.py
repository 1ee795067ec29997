"""Real storage servers for the tests, installed (apt-get / pip) and started on loopback ports.

Each module is a pytest plugin (listed in ``tests/conftest.py``) offering session fixtures that
start a server the first time a test needs it and stop it at the end of the session.
"""
