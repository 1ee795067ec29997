from lacus.client import Client


def test_ping_and_whoami(client: Client) -> None:
    assert client.ping()["version"]
    assert client.whoami()["account"] == "root"
