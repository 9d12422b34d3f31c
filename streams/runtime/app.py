"""Builds the Faust app; the agents, tables and views live in their own modules."""

from __future__ import annotations

from typing import Any

import faust
from faust.types.auth import CredentialsT

from alerts.stage import AlertStage
from streams.contract.kafka_security import KafkaSecurity
from streams.funnel.agent import FunnelStage
from streams.ingest import http_api as http_ingest
from streams.ingest import supervisor as ingest_supervisor
from streams.inventory import api as inventory_api
from streams.inventory.agent import InventoryStage
from streams.merge import api as windows_api
from streams.merge.agent import MergeStage
from streams.runtime import flush_barrier, producing, repeated_logs, skipped_acks, web
from streams.runtime.metrics import Metrics
from streams.runtime.settings import Settings
from streams.runtime.topics import METADATA_MAX_AGE_MS, Topics
from streams.runtime.web import WorkerStatus
from streams.runtime.web_security import auth_middleware

__all__ = ["build_app"]


def build_app(settings: Settings, metrics: Metrics | None = None) -> faust.App:
    skipped_acks.install()
    flush_barrier.install()
    producing.install()
    metrics = metrics or Metrics(
        max_stores=settings.max_store_labels,
        max_channels=settings.max_channel_labels,
        max_sources=settings.max_source_labels,
        max_categories=settings.max_category_labels,
    )
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=broker_credentials(settings.kafka_security),
        store=settings.store,
        datadir=settings.data_dir,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_ssl_context=settings.web_ssl_context,
        web_application_options=web_application_options(settings),
        # Faust's views of stored state (order ids) and of partition routing: off unless asked
        web_tables_enabled=settings.web_debug_views,
        web_router_enabled=settings.web_debug_views,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        producer_linger_ms=producing.LINGER_MS,
        producer_max_batch_size=producing.MAX_BATCH_BYTES,
        producer_max_request_size=producing.MAX_REQUEST_BYTES,
        stream_buffer_maxsize=max(4096, settings.batch_max_messages * 2),
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.session_timeout_ms / 3000,
        consumer_group_instance_id=settings.group_instance_id,
        table_standby_replicas=settings.table_standby_replicas,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
    )
    app.producer.buffer.max_messages = producing.changelog_buffer_messages(settings)
    topics = Topics.declare(app, settings)
    status = WorkerStatus()
    funnel = FunnelStage(app, settings, topics, metrics)
    funnel.register()
    ingest_supervisor.register(app, settings, topics, metrics, status)
    merge = MergeStage(app, settings, topics, metrics)
    merge.register()
    inventory = InventoryStage(app, settings, topics, metrics)  # detectors: inventory.listeners
    inventory.register()
    alert_stage = AlertStage(app, settings, topics, metrics, merge, inventory)
    alert_stage.register()
    merge.spend_of = alert_stage.calendar.spend  # windows carry their campaign spend and ROI
    web.register(app, metrics, status)
    windows_api.register(app, funnel, merge)
    inventory_api.register(app, inventory)
    http_ingest.register(app, settings, topics, metrics)

    @app.task
    async def log_repeats_once() -> None:  # Faust has set up its log handlers by now
        repeated_logs.install()

    return app


def web_application_options(settings: Settings) -> dict[str, Any]:
    auth = settings.http_auth
    return {"middlewares": [auth_middleware(auth)]} if auth.enabled else {}


def broker_credentials(security: KafkaSecurity) -> CredentialsT | None:
    """Faust's form of the Kafka security settings (None: plaintext)."""
    context = security.ssl_context()
    if security.security_protocol == "SASL_SSL":
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password,
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    if security.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return None
