"""The ``tumour-response`` command: ``serve``, ``openapi`` (contract section 1),
``migrate`` and ``assess`` (:mod:`.assess_command`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from service.config import Settings
from service.domain.errors import DomainError
from service.entrypoints import assess_command, collector, logs

Command = Callable[[Settings, argparse.Namespace], int]


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from service.entrypoints.api.app import create_app
    from service.entrypoints.api.auth import InsecureSettings

    host = args.host or settings.http_host
    port = args.port if args.port is not None else settings.http_port
    settings = settings.model_copy(update={"http_host": host, "http_port": port})
    logs.configure(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)  # refuses auth off on a public address
    except InsecureSettings as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    collector.settle()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        log_config=None,  # our handlers (logs.configure), not uvicorn's
        access_log=False,  # it records query strings; the app logs route templates
        limit_concurrency=settings.http_limit_concurrency,  # then 503 (reliability.md 5)
        # reliability.md section 3 "Restart recovery": on SIGTERM stop accepting at once
        # (readiness drops), let in-flight requests finish within the grace period.
        timeout_graceful_shutdown=settings.shutdown_grace,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Bring the database to the latest revision and exit (a deployment's migration Job;
    ``serve`` does the same at start-up, under a lock on PostgreSQL)."""
    from service.adapters import db

    logs.configure(settings.log_level, settings.log_format)
    engine = db.create_engine(settings.database_url)
    try:
        db.migrate(engine)
    finally:
        engine.dispose()
    logging.getLogger(__name__).info("database schema at the latest revision")
    return 0


def _openapi(settings: Settings, args: argparse.Namespace) -> int:
    from service.entrypoints.api.app import create_app

    print(json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tumour-response", description="Tumour response assessment service"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to bind (default TR_HTTP_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default TR_HTTP_PORT, 8000)")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="migrate the database to the latest revision")
    migrate.set_defaults(run=_migrate)
    openapi = commands.add_parser("openapi", help="print the OpenAPI document")
    openapi.set_defaults(run=_openapi)
    assess_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit 0 on success, 1 on a domain error, 2 on a usage error."""
    args = _parser().parse_args(argv)
    settings = Settings()
    run: Command = args.run
    try:
        return run(settings, args)
    except DomainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
