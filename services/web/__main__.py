"""hive-web: wires settings, the listening socket, the database, the live hub and the server."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from ..hive import log as hlog
from ..hive import sd
from . import app as webapp
from . import journal, pages, serve, views
from .admin import Admin
from .auth import Doorkeeper
from .context import Context
from .live import Hub, StreamSlots
from .settings import SettingsError, WebSettings


def _watchdog(interval: float, stopping: threading.Event) -> None:
    while not stopping.wait(interval):
        sd.ping_watchdog()


def main(argv: list[str] | None = None) -> int:
    hlog.set_identifier("hive-web")
    try:
        settings = WebSettings.from_env()
        sock = serve.listening_socket(settings)
    except (SettingsError, serve.BindError) as e:
        hlog.log(f"hive-web cannot start: {e}", kind="web_request", priority=hlog.ERR)
        print(f"hive-web: {e}", file=sys.stderr, flush=True)
        return 1
    try:
        views.open_readonly(settings.paths.db)
    except (views.NoDatabase, ValueError) as e:  # ValueError: a bad HIVE_DB_SYNCHRONOUS
        print(f"hive-web: {e}", file=sys.stderr, flush=True)
        sock.close()
        return 1
    admin = Admin(settings.paths.admin_socket)
    renderer = pages.Renderer(hive_caps=settings.budget_defaults)
    slots = StreamSlots(settings.max_streams, settings.streams_per_session)
    hub = Hub(admin, renderer, slots)
    ctx = Context(
        settings=settings,
        admin=admin,
        hub=hub,
        renderer=renderer,
        journal=journal.JournalSource(settings.journal_namespace),
        slots=slots,
        doorkeeper=Doorkeeper(admin),
    )
    server = serve.make_server(webapp.build(ctx), sock, settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        # End the live streams first: waitress waits for its threads when it stops.
        ctx.stopping.set()
        hub.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    hub.start()
    where = serve.address(sock)
    hlog.log(f"hive-web serving on http://{where}/", kind="service_started")
    print(f"hive-web is serving on http://{where}/", flush=True)
    sd.ready(f"serving on http://{where}/")
    interval = sd.watchdog_interval()
    if interval is not None:
        threading.Thread(target=_watchdog, args=(interval, ctx.stopping), daemon=True).start()
    try:
        server.run()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        ctx.stopping.set()
        sd.stopping("hive-web stopping")
        hlog.log("hive-web stopping", kind="service_stopping")
        hub.stop()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
