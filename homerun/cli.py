"""`homerun`: run the controller, migrate the database, administer credentials."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from controller.db.sealed import Keyring, SealingError
from controller.domain import Credential, TokenScope
from controller.services import credentials
from controller.settings import ConfigError, Settings, load_settings
from controller.setup import run_in_transaction, upgrade_database
from homerun import logs
from invoker.settings import InvokerConfigError, InvokerSettings, load_invoker_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _serve(settings: Settings) -> None:
    import uvicorn

    from controller.api.app import create_app

    logs.configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )


@click.group()
@click.version_option(package_name="homerun")
def main() -> None:
    """Homerun: a self-hosted action runtime compatible with Adobe I/O Runtime."""


@main.command()
def controller() -> None:
    """Serve the controller API (migrate first with `homerun db upgrade`)."""
    _serve(_settings())


@main.group(invoke_without_command=True)
@click.option("--burst", is_flag=True, help="Exit once the queue is empty (for tests).")
@click.pass_context
def invoker(ctx: click.Context, burst: bool) -> None:
    """Run an invoker: take invocations from Redis and run them in containers."""
    if ctx.invoked_subcommand is not None:
        return
    from homerun import eventloop
    from invoker.main import serve

    settings = _invoker_settings()
    logs.configure()
    eventloop.run(serve(settings, burst=burst))


@invoker.command("health")
def invoker_health() -> None:
    """Exit 0 if this invoker (HOMERUN_INVOKER_ID) is heartbeating, 1 otherwise."""
    import asyncio

    from invoker.main import healthy

    settings = _invoker_settings()
    if not asyncio.run(healthy(settings)):
        click.echo(f"invoker {settings.id} is not heartbeating", err=True)
        sys.exit(1)
    click.echo(f"invoker {settings.id} is healthy")


def _invoker_settings() -> InvokerSettings:
    try:
        return load_invoker_settings()
    except InvokerConfigError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def db() -> None:
    """Database migrations."""


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head), seal any secret stored plain or
    under an older key, and sync the system catalog."""
    try:
        upgrade_database(_settings(), revision)
    except SealingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (`base` removes every table)."""
    from controller.db import migrate

    settings = _settings()
    try:
        migrate.downgrade(settings.effective_database_url, revision, settings.keyring())
    except SealingError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"database at {revision}")


@main.group()
def admin() -> None:
    """Operator credentials for the seed API."""


@admin.command("secret-key")
def secret_key() -> None:
    """Print a new key for HOMERUN_SECRET_KEYS (to rotate: the new key first, then the old,
    then `homerun db upgrade`)."""
    click.echo(Keyring.new_key())


def _print_credentials(rows: list[Credential], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([_as_dict(r) for r in rows], indent=2))
        return
    click.echo(f"{'ID':>4}  {'PREFIX':<14} {'SCOPE':<6} {'ORG':<24} {'STATUS':<8} DESCRIPTION")
    for r in rows:
        scope = r.scope.value if r.scope else "-"
        status = "revoked" if r.revoked else "active"
        click.echo(
            f"{r.id:>4}  {r.prefix + '…':<14} {scope:<6} {r.org_id or '-':<24} {status:<8} "
            f"{r.description or ''}"
        )


def _as_dict(r: Credential) -> dict[str, Any]:
    return {
        "id": r.id,
        "prefix": r.prefix,
        "scope": r.scope.value if r.scope else None,
        "org_id": r.org_id,
        "description": r.description,
        "created": r.created,
        "revoked": r.revoked,
    }


@admin.group("namespace")
def namespace_group() -> None:
    """Namespaces and their options."""


@namespace_group.command("create")
@click.argument("name")
@click.option("--auth", help="Its credentials, UUID:KEY (default: new ones).")
def namespace_create(name: str, auth: str | None) -> None:
    """Create namespace NAME and print its `uuid:key`, as `wskadmin user create NAME [-u
    UUID:KEY]` does (for setups that use a known key). Creating it again with the same
    credentials, or without --auth, changes nothing."""
    from controller.errors import HomerunError
    from controller.services import namespaces

    try:
        given = namespaces.parse_auth(auth) if auth is not None else None
        created = run_in_transaction(
            _settings(), lambda s: namespaces.ensure(s, None, None, name=name, auth=given)
        )
    except HomerunError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(created.auth)


@namespace_group.command("keep-blocking-successes")
@click.argument("name")
@click.argument("keep", type=click.BOOL)
def namespace_keep_blocking(name: str, keep: bool) -> None:
    """Whether namespace NAME keeps successful blocking activations (true, the default) or
    drops them as Adobe I/O Runtime does (false); all others are always kept."""
    from controller.errors import NotFound
    from controller.services import namespaces
    from controller.services.activations import DROP_BLOCKING_SUCCESSES

    try:
        run_in_transaction(
            _settings(),
            lambda s: namespaces.set_option(s, name, DROP_BLOCKING_SUCCESSES, not keep),
        )
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{name}: successful blocking activations are {'kept' if keep else 'dropped'}")


@admin.group()
def token() -> None:
    """Bearer tokens: org-scoped or admin."""


@token.command("create")
@click.option("--org", "org_id", help="Scope the token to this organization id.")
@click.option("--admin", "is_admin", is_flag=True, help="An admin token (admin endpoints).")
@click.option("--description", help="A note shown when tokens are listed.")
def token_create(org_id: str | None, is_admin: bool, description: str | None) -> None:
    """Issue a token. It is printed once and stored only as a digest."""
    if bool(org_id) == is_admin:
        raise click.UsageError("give exactly one of --org ORG_ID or --admin")
    scope = TokenScope.ADMIN if is_admin else TokenScope.ORG
    _, secret = run_in_transaction(
        _settings(), lambda s: credentials.create_token(s, scope, org_id, description)
    )
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def token_list(as_json: bool) -> None:
    """List tokens (never their secrets)."""
    _print_credentials(run_in_transaction(_settings(), credentials.list_tokens), as_json)


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    from controller.errors import NotFound

    try:
        run_in_transaction(_settings(), lambda s: credentials.revoke_token(s, token_id))
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"token {token_id} revoked")


@admin.group()
def apikey() -> None:
    """API keys, sent as `X-Api-Key`."""


@apikey.command("create")
@click.option("--description", help="A note shown when keys are listed.")
def apikey_create(description: str | None) -> None:
    """Issue an API key. It is printed once and stored only as a digest."""
    _, secret = run_in_transaction(
        _settings(), lambda s: credentials.create_api_key(s, description)
    )
    click.echo(secret)


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def apikey_list(as_json: bool) -> None:
    """List API keys (never their secrets)."""
    _print_credentials(run_in_transaction(_settings(), credentials.list_api_keys), as_json)


@apikey.command("revoke")
@click.argument("key_id", type=int)
def apikey_revoke(key_id: int) -> None:
    """Revoke an API key by id."""
    from controller.errors import NotFound

    try:
        run_in_transaction(_settings(), lambda s: credentials.revoke_api_key(s, key_id))
    except NotFound as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"API key {key_id} revoked")


@main.command()
def standalone() -> None:
    """Run everything on this machine: migrate, create the guest namespace and operator
    credentials on first start, start a private Redis, an invoker and the API.

    Once it serves it prints the guest namespace's auth, an operator token and API key, and
    the configuration of the clients users already have:

    \b
    ~/.wskprops (wsk-style clients):
      APIHOST=http://localhost:3233  AUTH=<guest auth>  NAMESPACE=guest
    the openwhisk npm client from the environment:
      __OW_API_HOST, __OW_API_KEY (the guest auth), __OW_NAMESPACE
    the aio CLI:
      AIO_RUNTIME_APIHOST, AIO_RUNTIME_AUTH, AIO_RUNTIME_NAMESPACE, USE_RUNTIME_AUTH=true
    aio app deploy:
      AIO_DEPLOY_SERVICE_URL=http://localhost:3233, the operator token as its bearer token

    Each standalone has its own invoker id (HOMERUN_INVOKER_ID, else one kept in the data
    directory) and touches only the containers labelled with it. HOMERUN_INVOKER_* variables
    apply as for `homerun invoker`.
    """
    from homerun.standalone import run

    run(_settings())


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
