"""Running the webhook under uvicorn: the main listener, and the plain-HTTP probe listener beside it."""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

from app.telemetry.prometheus import prepare_multiprocess_dir
from app.web.connections import GuardedHttpToolsProtocol
from app.web.settings import Settings
from app.web.tls import reloading_ssl_context

APP_FACTORY = "app.web.app:create_app_from_env"
HEALTH_APP_FACTORY = "app.web.app:create_health_app_from_env"


def run_server(settings: Settings) -> None:
    """Serve until interrupted. Workers (separate processes) read the settings from the environment.

    Metrics of every process (workers, the writer child of ``run``) go to one multiprocess directory.
    Logging is the command's (``app.telemetry.logs``): uvicorn gets no config of its own, so its
    loggers propagate to the root handler and share its format.
    """
    import uvicorn

    prepare_multiprocess_dir()
    os.environ.update(settings.to_env())
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "factory": True,
        "loop": "uvloop",
        "http": GuardedHttpToolsProtocol,  # httptools, closing clients that never finish a request
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": settings.limit_concurrency,
        "access_log": False,  # one line per request costs more than the check itself
        "log_level": settings.log_level.lower(),
        "log_config": None,
    }
    if settings.tls:
        # The files, reloaded when they change (app.web.tls), in every worker process.
        options.update(
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
            ssl_context_factory=reloading_ssl_context,
        )
        if settings.tls_client_ca:
            options.update(ssl_ca_certs=settings.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    if not settings.health_port:
        uvicorn.run(APP_FACTORY, workers=settings.workers, **options)
        return
    import uvloop

    main = uvicorn.Server(uvicorn.Config(APP_FACTORY, **options))
    probe_options = {k: v for k, v in options.items() if not k.startswith("ssl_")}  # plain HTTP
    probe_options["port"] = settings.health_port
    probes = uvicorn.Server(uvicorn.Config(HEALTH_APP_FACTORY, **probe_options))

    async def both() -> None:
        # Each server captures SIGTERM/SIGINT and re-raises it when done, so one signal stops both.
        await asyncio.gather(main.serve(), probes.serve())

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(both())
