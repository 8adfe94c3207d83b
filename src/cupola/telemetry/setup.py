"""One server's telemetry: its own span processors (never the process-global
``TracerProvider``, so two apps in one process, or a test and the app it drives, stay apart)
that store and export finished spans, the tracing hook, and the retention purge.

Every span is recorded (a caller's "not sampled" flag does not stop cupola's own records).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import anyio.to_thread
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from cupola import __version__
from cupola.hooks import RunHooks
from cupola.settings import Settings, TelemetrySettings
from cupola.store.traces import TraceStore
from cupola.telemetry.export import StoreSpanExporter
from cupola.telemetry.propagation import RequestIdGenerator
from cupola.telemetry.tracing import TracingHooks

log = logging.getLogger("cupola.telemetry")

PURGE_EVERY_SECONDS = 3600.0
MAX_QUEUE = 16384
"""Finished spans waiting per processor; when a burst fills it, new spans are dropped (and
counted by the SDK's warning) rather than slowing runs down."""
BATCH = 512


def otlp_exporter(config: TelemetrySettings) -> SpanExporter | None:
    """The OTLP exporter ``config`` asks for (gRPC or HTTP/protobuf), or None without an
    endpoint. Options cupola does not set (certificates, timeout, compression) the SDK reads
    from the standard ``OTEL_EXPORTER_OTLP_*`` variables."""
    if not config.otlp_endpoint:
        return None
    headers = dict(config.otlp_headers) or None
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=config.otlp_endpoint, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=config.otlp_http_url, headers=headers)


class Telemetry:
    """Tracing for one server (``build_services`` makes it from the settings):
    :attr:`hooks` go to the runner; :meth:`start` and :meth:`aclose` follow the app's
    lifespan (``aclose`` flushes the spans still queued)."""

    def __init__(
        self,
        settings: Settings,
        store: TraceStore,
        *,
        redact: Callable[[str], str],
        exporters: tuple[SpanExporter, ...] = (),
    ) -> None:
        config = settings.telemetry
        self.config = config
        self.store = store
        self.resource = Resource.create(
            {
                "service.name": "cupola",
                "service.version": __version__,
                "cupola.project": settings.project,
            }
        )
        delay_ms = config.export_delay_seconds * 1000
        sinks: list[SpanExporter] = []
        if config.store:
            sinks.append(StoreSpanExporter(store, settings.project))
        remote = otlp_exporter(config)
        if remote is not None:
            sinks.append(remote)
        sinks += exporters
        self.processors = tuple(
            BatchSpanProcessor(
                sink,
                max_queue_size=MAX_QUEUE,
                schedule_delay_millis=delay_ms,
                max_export_batch_size=BATCH,
            )
            for sink in sinks
        )
        self.exporting_to = remote
        self.hook = TracingHooks(
            self._finished,
            resource=self.resource,
            ids=RequestIdGenerator(),
            providers={d.name: d.provider for d in settings.deployments},
            redact=redact,
            capture_content=config.capture_content,
        )
        self._stop = threading.Event()
        self._purger: threading.Thread | None = None

    def _finished(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    @property
    def hooks(self) -> list[RunHooks]:
        return [self.hook]

    async def start(self) -> None:
        """Begin the retention purge (now, then hourly), when spans are stored and kept for
        a limited time."""
        if not (self.config.store and self.config.retention_days > 0) or self._purger:
            return
        self._stop.clear()
        self._purger = threading.Thread(target=self._purge_loop, name="cupola-span-purge")
        self._purger.daemon = True
        self._purger.start()

    def purge(self) -> int:
        """Delete stored spans older than the retention; returns how many (blocking)."""
        cutoff = time.time_ns() - int(self.config.retention_days * 86400 * 1e9)
        return self.store.purge_spans_sync(cutoff)

    def _purge_loop(self) -> None:
        while not self._stop.is_set():
            try:
                deleted = self.purge()
                if deleted:
                    days = self.config.retention_days
                    log.info("deleted %d spans older than %s days", deleted, days)
            except Exception:  # the database is away for now: try again next time
                log.exception("span retention purge failed")
            self._stop.wait(PURGE_EVERY_SECONDS)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Write and export every finished span now (blocking)."""
        return all(p.force_flush(timeout_millis) for p in self.processors)

    async def aclose(self) -> None:
        """Stop the purge; flush and shut the processors down (before the store closes)."""
        self._stop.set()
        purger, self._purger = self._purger, None
        if purger is not None:
            await anyio.to_thread.run_sync(purger.join, 10.0)
        for processor in self.processors:
            await anyio.to_thread.run_sync(processor.shutdown)
