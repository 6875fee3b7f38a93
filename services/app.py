"""The service defaults: one factory that every service calls once to wire itself.

`create_service_app` builds, without any I/O, the FastStream `KafkaBroker`
(idempotent producer, acks=all), the PyMongo `AsyncMongoClient`, structlog, the
failure policy for consumers, Prometheus metrics and the health endpoints, and returns
a FastAPI application whose lifespan connects everything at start and drains it on
shutdown (SIGTERM from uvicorn: in-flight messages finish, offsets are committed, the
broker and the client close). The service passes a `register` function that declares
its subscribers and HTTP routes against the `Runtime`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Union

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo import AsyncMongoClient

from schemas import Event
from schemas.topics import ALL_TOPICS, TopicSpec
from services import kafka as kafka_defaults
from services.auth import TokenVerifier, describe_identity_provider, public, requires
from services.auth.roles import OPERATIONS, PUBLIC_LIVENESS, PUBLIC_READINESS, may
from services.body_limit import BodySizeLimit
from services.console.web import install_forbidden_page
from services.consumers import ErrorPolicy
from services.idempotency import ProcessedEvents
from services.lag import start_lag_exporter
from services.logging import configure_logging
from services.mongo import MongoDatabase, create_mongo_client, ping
from services.settings import ServiceSettings
from services.tracing import TRACER, Tracing, create_tracing

log = structlog.get_logger(__name__)

Hook = Callable[["Runtime"], Awaitable[None]]


@dataclass
class Runtime:
    """What a service's handlers and routes are given: built once, connected by the lifespan."""

    settings: ServiceSettings
    broker: KafkaBroker
    mongo: AsyncMongoClient[dict[str, Any]]
    db: MongoDatabase
    error_policy: ErrorPolicy
    metrics: CollectorRegistry
    processed: ProcessedEvents
    tracing: Tracing
    app_state: dict[str, Any] = field(default_factory=dict)
    """Service-specific objects (pipelines, repositories) that tests and routes reach by name."""
    kafka_connected: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the broker has started; with `kafka_required=False` that may be after start-up."""
    background: list[asyncio.Task[Any]] = field(default_factory=list)
    startup_hooks: list[Hook] = field(default_factory=list)
    shutdown_hooks: list[Hook] = field(default_factory=list)

    def publishes(self, topic: TopicSpec, *events: type[Event]) -> None:
        """Declare what this service publishes on a topic, for the AsyncAPI document."""
        schema: Any = events[0] if len(events) == 1 else Union[events]  # noqa: UP007 - a runtime union of classes
        self.broker.publisher(
            kafka_defaults.topic_name(topic), schema=schema, description=topic.description, title=f"{topic.name}:publish"
        )

    def on_startup(self, hook: Hook) -> Hook:
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        self.shutdown_hooks.append(hook)
        return hook

    def run_in_background(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        """Start a long-running task once the service is up (relays, timers); cancelled at shutdown."""

        async def start(_: Runtime) -> None:
            self.background.append(asyncio.create_task(_supervised(name, factory), name=name))

        self.startup_hooks.append(start)


async def _supervised(name: str, factory: Callable[[], Awaitable[Any]]) -> None:
    """Keep a background loop alive: a crash is logged and the loop restarts after a pause."""
    while True:
        try:
            await factory()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background.crashed", task=name)
            await asyncio.sleep(1.0)


STOP_TIMEOUT_S = 15.0
"""How long a stopping service waits for each step of its shutdown: an orchestrator kills a pod that
takes longer than its grace period, and a step stuck for good (a Kafka client waiting on a group that
is rebalancing) must not hold the rest of the shutdown, nor hide which step it was."""


async def _stopped_in_time(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait for the cancelled background tasks; name those that did not stop in time, and go on."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in pending:
        log.error("service.task_not_stopped", task=task.get_name(), timeout_s=STOP_TIMEOUT_S)


async def _in_time(step: Awaitable[Any], *, what: str) -> None:
    try:
        await asyncio.wait_for(step, timeout=STOP_TIMEOUT_S)
    except TimeoutError:
        log.error("service.stop_step_timed_out", step=what, timeout_s=STOP_TIMEOUT_S)


def instance_name(settings: ServiceSettings) -> str:
    return settings.instance_id or f"{socket.gethostname()}:{os.getpid()}"


def build_runtime(settings: ServiceSettings, *, description: str | None = None) -> Runtime:
    name = settings.service_name
    metrics = CollectorRegistry()
    tracing = create_tracing(name, instance=instance_name(settings), endpoint=settings.otlp_endpoint)
    error_policy = ErrorPolicy(name, retry_delays=settings.retry_delays, registry=metrics)
    broker = kafka_defaults.create_broker(
        settings.kafka,
        client_id=f"{name}-{instance_name(settings)}",
        description=description,
        graceful_timeout=settings.graceful_timeout_s,
        # Tracing outermost: the consumer's span covers the retries and dead-lettering too.
        middlewares=(*tracing.kafka_middlewares(), KafkaPrometheusMiddleware(registry=metrics, app_name=name), error_policy),
    )
    error_policy.bind(broker)
    # Handlers that start spans of their own (a batch's per-request spans) find the tracer here.
    broker.context.set_global(TRACER, tracing.tracer)
    mongo = create_mongo_client(settings.mongo, app_name=name, event_listeners=tracing.mongo_listeners())
    db = mongo[settings.mongo.database]
    return Runtime(
        settings=settings,
        broker=broker,
        mongo=mongo,
        db=db,
        error_policy=error_policy,
        metrics=metrics,
        processed=ProcessedEvents(mongo, db, consumer=name),
        tracing=tracing,
    )


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    register: Callable[[Runtime], Sequence[Any] | None],
    kafka_required: bool = True,
) -> FastAPI:
    """Wire a service: `register(runtime)` declares subscribers and returns FastAPI routers.

    With `kafka_required=False` (intake) the service starts and reports ready while Kafka is
    unreachable, and connects in the background: its channels keep accepting into the outbox.

    The lifespan builds a `TokenVerifier` from `settings.auth` (it reaches the identity provider on
    the first protected request, not at start) for the `requires(...)` dependencies of
    `services.auth`; every route declares its policy (`tests/unit/test_route_policies.py`). Request
    bodies larger than `settings.max_body_bytes` are refused with 413 before a handler reads them.
    """
    configure_logging(
        service=settings.service_name,
        instance=instance_name(settings),
        level=settings.log_level,
        fmt=settings.log_format,
        pepper=settings.log_pepper.get_secret_value() if settings.log_pepper else None,
    )
    kafka_defaults.use_topic_prefix(settings.kafka.topic_prefix)
    runtime = build_runtime(settings, description=description)
    routers = register(runtime) or ()
    runtime.error_policy.attach_retries(runtime.broker)
    start_lag_exporter(runtime)  # kafka_consumer_lag{group,topic,partition} on /metrics, every <SERVICE>_LAG_INTERVAL

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def connect_kafka(timeout_s: float) -> None:
            topics = (*ALL_TOPICS, *runtime.error_policy.topics())
            await kafka_defaults.wait_and_ensure_topics(settings.kafka, topics, timeout_s=timeout_s)
            await runtime.broker.start()
            runtime.kafka_connected.set()
            log.info("kafka.connected")

        verifier = TokenVerifier(settings.auth)
        app.state.token_verifier = verifier
        await runtime.processed.ensure_indexes()
        if kafka_required:
            await connect_kafka(timeout_s=120.0)
        else:
            runtime.background.append(asyncio.create_task(connect_kafka(timeout_s=float("inf")), name="kafka.connect"))
        for hook in runtime.startup_hooks:
            await hook(runtime)
        log.info("service.started", http_port=settings.http_port)
        try:
            yield
        finally:
            log.info("service.stopping")
            for task in runtime.background:
                task.cancel()
            await _stopped_in_time(runtime.background)
            for hook in runtime.shutdown_hooks:
                await _in_time(hook(runtime), what="shutdown_hook")
            await _in_time(runtime.broker.stop(), what="broker.stop")
            await runtime.mongo.close()
            await verifier.aclose()
            log.info("service.stopped")
            # Last: the spans of the shutdown itself go out too (a flush, bounded by the exporter's timeout).
            await asyncio.to_thread(runtime.tracing.shutdown)

    # In production the API's description is not published: it maps every route for whoever asks.
    documented = settings.environment != "production"
    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        openapi_url="/openapi.json" if documented else None,
        docs_url="/docs" if documented else None,
        redoc_url="/redoc" if documented else None,
    )
    app.state.runtime = runtime
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    runtime.tracing.instrument_app(app)
    install_forbidden_page(app)
    describe_identity_provider(app, settings.auth)

    @app.get("/health/live", tags=["operations"], summary="The process is up", dependencies=[public(PUBLIC_LIVENESS)])
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    async def kafka_ping() -> bool:
        return runtime.kafka_connected.is_set() and await runtime.broker.ping(timeout=2.0)

    @app.get("/health/ready", tags=["operations"], summary="Kafka and MongoDB answer", dependencies=[public(PUBLIC_READINESS)])
    async def ready() -> JSONResponse:
        kafka_ok, mongo_ok = await asyncio.gather(kafka_ping(), ping(runtime.mongo))
        body = {"kafka": "up" if kafka_ok else "down", "mongodb": "up" if mongo_ok else "down"}
        ok = mongo_ok and (kafka_ok or not kafka_required)
        return JSONResponse(body, status_code=200 if ok else 503)

    # Prometheus scrapes with a token of a client holding `ops` (its `oauth2:` client-credentials setting).
    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        include_in_schema=False,
        dependencies=[requires(*may(OPERATIONS))],
    )
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


async def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the runtime of the service serving this request (async: a plain `def`
    dependency is run in a worker thread, a thread hop per request for one attribute read)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def server_options(settings: ServiceSettings) -> dict[str, Any]:
    """What `serve` tells uvicorn (besides the app): where to listen, and whose proxy headers to believe."""
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.graceful_timeout_s),
        # Bounded like the bodies: past this many connections and tasks, uvicorn answers 503.
        "limit_concurrency": settings.max_concurrency,
        # uvicorn's own X-Forwarded-For handling, from the proxies we name only: its default
        # trusts 127.0.0.1, which would let any local process pick its client address.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run one service process; uvicorn turns SIGTERM/SIGINT into a graceful lifespan shutdown.

    Bounded like the bodies: past `settings.max_concurrency` connections and tasks, uvicorn answers 503."""
    uvicorn.run(app, **server_options(settings))
