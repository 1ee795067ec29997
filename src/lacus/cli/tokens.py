"""``lacus logout``, ``lacus token list|revoke``."""

from __future__ import annotations

from typing import Annotated

import typer

from lacus.cli._common import JsonOption, client
from lacus.cli._output import console, emit_json, table
from lacus.client.config import ClientConfig, config_path, load_config, save_config

app = typer.Typer(help="Tokens: list and revoke the account's tokens.", no_args_is_help=True)


@app.command("list")
def list_(json: JsonOption = False) -> None:
    """List the account's tokens not yet expired (an id, never the secret)."""
    with client() as lacus:
        found = lacus.list_tokens()
    if json:
        emit_json(found)
        return
    table(
        found,
        [
            ("id", "id"),
            ("identity", "identity"),
            ("created_at", "created"),
            ("expires_at", "expires"),
            ("current", "this one"),
        ],
    )


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as 'lacus token list' shows.")],
) -> None:
    """Revoke a token (own tokens; admins: anyone's): refused everywhere from now on."""
    with client() as lacus:
        lacus.revoke_token(token_id)
    console().print(f"Revoked token {token_id}", markup=False)


def logout(
    all_tokens: Annotated[
        bool, typer.Option("--all", help="Revoke every token of the account, not only this one.")
    ] = False,
) -> None:
    """Revoke the token the client holds and forget the saved token and password."""
    revoked = 0
    with client() as lacus:
        if all_tokens:
            others = [entry["id"] for entry in lacus.list_tokens() if not entry["current"]]
            for token_id in others:
                lacus.revoke_token(token_id)
            revoked += len(others)
        revoked += lacus.logout()
    saved = config_path().is_file()
    if saved:
        kept = load_config()
        save_config(ClientConfig(url=kept.url, account=kept.account, upload_rate=kept.upload_rate))
    out = console()
    out.print(f"Logged out: {revoked} token(s) revoked", markup=False)
    if saved:
        out.print(f"Token and password forgotten in {config_path()}", markup=False)
