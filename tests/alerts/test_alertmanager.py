"""alerts/alertmanager.yml and alerts/templates/: routing, inhibition and rendered notifications.

The routing tree is checked with `amtool config routes test`. Notifications are checked end
to end with a real Alertmanager (Debian's `prometheus-alertmanager`, started here on a free
127.0.0.1 port with its own data directory) running the shipped configuration with only the
endpoints, secret files and timings changed: every receiver integration (PagerDuty, WeChat
Work, Slack, e-mail, webhooks) delivers to local servers started by the test, which record
what arrives. Alerts are posted through the API v2 as the detectors and Prometheus do,
firing and then resolved. Needs nothing else running; skips where the tools are missing.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.links import runbook_url

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "alerts" / "alertmanager.yml"
TEMPLATES = REPO / "alerts" / "templates"
HOST = "127.0.0.1"
ALERTMANAGER_LIFETIME_S = 300  # the test's Alertmanager stops by itself after this at most

Json = dict[str, Any]

# Direct connections only: a proxy from the environment must not see localhost requests.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_tool(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    pytest.skip(f"`{names[0]}` is not installed (Debian package prometheus-alertmanager)")


def amtool(*args: str) -> str:
    argv = [require_tool("amtool"), *args]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


# -- the shipped file -----------------------------------------------------------------------


def test_amtool_check_config_loads_the_templates() -> None:
    output = amtool("check-config", str(CONFIG))
    assert "SUCCESS" in output
    assert re.search(r"- [1-9]\d* templates", output), output


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=Watchdog", "severity=none"], "deadmans-switch"),
        (["alertname=StockOut", "severity=critical", "store_id=s1", "sku=x"], "page-critical"),
        (["alertname=PaymentFailureSpike", "severity=critical", "store_id=s1"], "page-critical"),
        (["alertname=TrafficDrop", "severity=critical", "store_id=s1"], "page-critical"),
        (["alertname=SalewatchWorkerDown", "severity=critical"], "page-critical"),
        (["alertname=LowStockSoon", "severity=warning", "store_id=s1"], "chat-warning"),
        (["alertname=ConversionDrop", "severity=warning", "store_id=s1"], "chat-warning"),
        (["alertname=SalewatchConsumerLagHigh", "severity=warning"], "chat-warning"),
        (["alertname=SomethingNew", "severity=info"], "chat-warning"),
        (["alertname=SomethingNew"], "chat-warning"),  # no severity: still reaches someone
    ],
)
def test_routes(labels: list[str], receivers: str) -> None:
    """Critical pages, warning goes to chat, both into the digest; Watchdog only to the
    dead man's switch."""
    if any(label in labels for label in ("severity=critical", "severity=warning")):
        receivers = f"email-digest,{receivers}"
    output = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receivers}",
        *labels,
    )  # fmt: skip
    assert output.strip() == receivers


def test_no_secret_in_the_file() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    secret_keys = {"routing_key", "service_key", "api_key", "auth_password", "api_url"}
    for receiver in config["receivers"]:
        for kind, integrations in receiver.items():
            for integration in integrations if kind.endswith("_configs") else []:
                assert not secret_keys & set(integration), (receiver["name"], kind)
    assert "smtp_auth_password" not in config["global"]
    assert config["global"]["wechat_api_secret"].startswith("REPLACE_")


# -- local endpoints ------------------------------------------------------------------------


@dataclass
class Delivery:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """What the local endpoints received, in order; waits for a matching delivery."""

    deliveries: list[Any] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, item: Any) -> None:
        with self.lock:
            self.deliveries.append(item)
            self.lock.notify_all()

    def wait(self, match: Callable[[Any], bool], timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while True:
                for item in self.deliveries:
                    if match(item):
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(repr(d)[:300] for d in self.deliveries)
                    pytest.fail(f"no matching delivery within {timeout_s} s; received:\n{seen}")
                self.lock.wait(remaining)

    def all(self, match: Callable[[Any], bool]) -> list[Any]:
        with self.lock:
            return [item for item in self.deliveries if match(item)]


class _Endpoint(BaseHTTPRequestHandler):
    """Answers as Slack, PagerDuty, WeChat Work and a webhook receiver would."""

    recorder: Recorder

    def _record(self, body: Any) -> Delivery:
        url = urllib.parse.urlsplit(self.path)
        delivery = Delivery(
            url.path,
            dict(urllib.parse.parse_qsl(url.query)),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )
        self.recorder.add(delivery)
        return delivery

    def _answer(self, status: int, body: Json | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # WeChat Work token request
        self._record(None)
        self._answer(200, {"errcode": 0, "errmsg": "ok", "access_token": "t0k", "expires_in": 7200})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self._record(json.loads(raw) if raw else None)
        if delivery.path.startswith("/wechat/"):
            self._answer(200, {"errcode": 0, "errmsg": "ok"})
        elif delivery.path.startswith("/pagerduty"):
            self._answer(202, {"status": "success", "dedup_key": "k"})
        else:
            self._answer(200, "ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for Alertmanager's e-mail notifier (no TLS, no AUTH offered)."""

    recorder: Recorder

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 localhost test SMTP")
        recipients: list[str] = []
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-localhost")
                self.reply("250 8BITMIME")
            elif verb == "MAIL":
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                message = email.message_from_bytes(bytes(data), policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                self.recorder.add(message)
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # HELO, RSET, NOOP
                self.reply("250 OK")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# -- a real Alertmanager on the shipped configuration ---------------------------------------


def local_config(http_base: str, smtp_port: int, secrets: Path) -> Json:
    """The shipped configuration, delivering to the local endpoints with test secrets and
    1 s timings; fails on an integration type it does not know how to redirect, so nothing
    this test starts reaches outside."""
    config = yaml.safe_load(CONFIG.read_text())
    (secrets / "pagerduty-routing-key").write_text("test-routing-key\n")
    (secrets / "deadmans-switch-token").write_text("test-heartbeat-token\n")
    config["global"].update(
        smtp_smarthost=f"{HOST}:{smtp_port}",
        smtp_require_tls=False,
        wechat_api_url=f"{http_base}/wechat/",
        pagerduty_url=f"{http_base}/pagerduty",
    )
    config["global"].pop("smtp_auth_password_file", None)
    config["templates"] = [str(TEMPLATES / "*.tmpl")]

    def fast(route: Json) -> None:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    for receiver in config["receivers"]:
        name = receiver["name"]
        for kind, integrations in receiver.items():
            if kind == "name":
                continue
            for integration in integrations:
                if kind == "slack_configs":
                    url_file = secrets / f"slack-{name}"
                    url_file.write_text(f"{http_base}/slack/{name}\n")
                    integration["api_url_file"] = str(url_file)
                elif kind == "pagerduty_configs":
                    integration["routing_key_file"] = str(secrets / "pagerduty-routing-key")
                elif kind == "webhook_configs":
                    integration["url"] = f"{http_base}/webhook/{name}"
                    auth = integration.get("http_config", {}).get("authorization")
                    if auth and "credentials_file" in auth:
                        auth["credentials_file"] = str(secrets / "deadmans-switch-token")
                elif kind == "wechat_configs":
                    assert "api_url" not in integration  # global, redirected above
                elif kind == "email_configs":
                    assert "smarthost" not in integration  # global, redirected above
                else:
                    raise AssertionError(f"{name}: no local endpoint for {kind}")
    return config


@dataclass
class LocalAlertmanager:
    url: str
    http: Recorder
    mail: Recorder

    def post(self, alerts: list[Json]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
        )
        with _HTTP.open(request, timeout=10) as response:
            assert response.status == 200

    def alerts(self, **labels: str) -> list[Json]:
        matchers = [f'{name}="{value}"' for name, value in labels.items()]
        query = urllib.parse.urlencode([("filter", m) for m in matchers])
        with _HTTP.open(f"{self.url}/api/v2/alerts?{query}", timeout=10) as response:
            result: list[Json] = json.load(response)
        return result


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[LocalAlertmanager]:
    binary = require_tool("prometheus-alertmanager", "alertmanager")
    http, mail = Recorder(), Recorder()
    handler = type("Endpoint", (_Endpoint,), {"recorder": http})
    web = ThreadingHTTPServer((HOST, 0), handler)
    web.daemon_threads = True
    smtp = _SmtpServer((HOST, 0), type("Smtp", (_Smtp,), {"recorder": mail}))
    servers = [web, smtp]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="salewatch-am-") as tmp:
        workdir = Path(tmp)
        secrets = workdir / "secrets"
        secrets.mkdir()
        config = local_config(
            f"http://{HOST}:{web.server_address[1]}", int(smtp.server_address[1]), secrets
        )
        config_file = workdir / "alertmanager.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        amtool("check-config", str(config_file))
        port = free_port()
        url = f"http://{HOST}:{port}"
        argv = [
            binary,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
        ]
        if timeout := shutil.which("timeout"):  # stops by itself even if pytest is killed
            argv = [timeout, "-s", "KILL", str(ALERTMANAGER_LIFETIME_S), *argv]
        log = (workdir / "alertmanager.log").open("wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with _HTTP.open(f"{url}/-/ready", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(
                        f"Alertmanager did not start:\n{(workdir / 'alertmanager.log').read_text()}"
                    )
                time.sleep(0.1)
            yield LocalAlertmanager(url, http, mail)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            for server in servers:
                server.shutdown()
                server.server_close()


def alert(alertname: str, severity: str, **labels: str) -> Json:
    """An alert as the detectors (business: with a store_id) or Prometheus send it."""
    label_set = {"alertname": alertname, "severity": severity, **labels}
    if "store_id" in labels:
        label_set["source"] = "salewatch"
        dashboard = f"http://grafana.test/d/salewatch-warroom?var-store={labels['store_id']}"
    else:
        dashboard = f"http://prometheus.test/graph?g0.expr={alertname}"
    what = " ".join(f"{k}={v}" for k, v in labels.items())
    return {
        "labels": label_set,
        "annotations": {
            "summary": f"{alertname} {what}".strip(),
            "description": f"test description of {alertname}",
            "runbook_url": runbook_url(alertname),
        },
        "generatorURL": dashboard,
        # now: an alert older than group_wait would be sent at once, alone in its group
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    }


def resolved(alerts: list[Json]) -> list[Json]:
    return [{**a, "endsAt": datetime.now(UTC).isoformat()} for a in alerts]


def slack(path: str, title: str) -> Callable[[Any], bool]:
    def match(d: Any) -> bool:
        return (
            isinstance(d, Delivery)
            and d.path == path
            and re.fullmatch(title, d.body["attachments"][0]["title"]) is not None
        )

    return match


# -- rendered notifications -----------------------------------------------------------------


def test_critical_pages_with_title_summary_links_and_resolves(
    alertmanager: LocalAlertmanager,
) -> None:
    store = f"st-{uuid.uuid4().hex[:6]}"
    stockouts = [alert("StockOut", "critical", store_id=store, sku=s) for s in ("A", "B")]
    alertmanager.post(stockouts)
    runbook = runbook_url("StockOut")
    dashboard = f"http://grafana.test/d/salewatch-warroom?var-store={store}"
    title = rf"\[FIRING:2\] StockOut \(critical\) · store {store} · SKU (A, B|B, A)"

    # Slack (the war room sees every page)
    message = alertmanager.http.wait(slack("/slack/page-critical", title)).body
    attachment = message["attachments"][0]
    assert message["channel"] == "#salewatch-warroom"
    assert attachment["color"] == "danger"
    assert attachment["title_link"] == dashboard
    text = attachment["text"]
    assert text.startswith("*Firing (2)*\n")
    for sku in ("A", "B"):
        assert f"*StockOut store_id={store} sku={sku}* — store {store} · SKU {sku}" in text
    assert text.count(f"<{runbook}|Runbook>") == 2 and text.count(f"<{dashboard}|Dashboard>") == 2

    # PagerDuty Events API v2
    def pagerduty(action: str) -> Callable[[Any], bool]:
        return lambda d: (
            isinstance(d, Delivery)
            and d.path == "/pagerduty"
            and d.body["event_action"] == action
            and store in d.body["payload"]["summary"]
        )

    event = alertmanager.http.wait(pagerduty("trigger")).body
    assert event["routing_key"] == "test-routing-key"
    assert re.fullmatch(title, event["payload"]["summary"])
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["group"] == f"store {store}"
    assert event["payload"]["class"] == "StockOut"
    assert event["links"] == [
        {"href": runbook, "text": "Runbook"},
        {"href": dashboard, "text": "Dashboard"},
    ]
    details = event["payload"]["custom_details"]
    assert details["store_id"] == store and "Firing (2):" in details["alerts"]

    # WeChat Work: token with the corp id and secret, then the application message
    def wechat(marker: str) -> Callable[[Any], bool]:
        return lambda d: (
            isinstance(d, Delivery)
            and d.path == "/wechat/message/send"
            and store in d.body["text"]["content"]
            and marker in d.body["text"]["content"]
        )

    sent = alertmanager.http.wait(wechat("[FIRING:2]"))
    token = alertmanager.http.wait(lambda d: d.path == "/wechat/gettoken")
    assert token.query == {
        "corpid": "REPLACE_WITH_WECHAT_CORP_ID",
        "corpsecret": "REPLACE_AT_DEPLOY_WECHAT_API_SECRET",
    }
    assert sent.query == {"access_token": "t0k"}
    assert (sent.body["msgtype"], sent.body["agentid"], sent.body["toparty"]) == (
        "text", "1000002", "2",
    )  # fmt: skip
    content = sent.body["text"]["content"]
    assert re.match(title + "\n\nFiring \\(2\\):\n", content), content
    assert f"  store {store} · SKU A\n" in content
    assert "  test description of StockOut\n" in content
    assert content.count(f"  Runbook: {runbook}\n") == 2
    assert content.count(f"  Dashboard: {dashboard}\n") == 2

    # One SKU restocked: the group shows both states; then the other: resolved everywhere.
    alertmanager.post(resolved(stockouts[:1]))
    partly = rf"\[FIRING:1, RESOLVED:1\] StockOut \(critical\) · store {store} · SKU (A, B|B, A)"
    text = alertmanager.http.wait(slack("/slack/page-critical", partly)).body
    assert "*Resolved (1)*\n• *StockOut" in text["attachments"][0]["text"]
    alertmanager.post(resolved(stockouts))
    done = rf"\[RESOLVED:2\] StockOut \(critical\) · store {store} · SKU (A, B|B, A)"
    attachment = alertmanager.http.wait(slack("/slack/page-critical", done)).body["attachments"][0]
    assert attachment["color"] == "good"
    assert attachment["text"].startswith("*Resolved (2)*\n") and "Firing" not in attachment["text"]
    assert "    resolved " in attachment["text"]
    resolve = alertmanager.http.wait(pagerduty("resolve")).body
    assert resolve["dedup_key"] == event["dedup_key"]
    content = alertmanager.http.wait(wechat("[RESOLVED:2]")).body["text"]["content"]
    assert "Resolved (2):" in content and "Firing" not in content

    # The digest mail: subject = title; text and HTML parts with the links.
    def mail(marker: str) -> Callable[[Any], bool]:
        return lambda m: marker in str(m["Subject"]) and store in str(m["Subject"])

    message = alertmanager.mail.wait(mail("[RESOLVED:2]"), timeout_s=30)
    assert re.fullmatch(r"\[salewatch\] " + done, str(message["Subject"]))
    assert message["To"] == "store-ops-leads@example.invalid"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert "Resolved (2):" in plain.get_content()
    assert f'<a href="{runbook}">Runbook</a>' in html.get_content()
    assert f'<a href="{dashboard}">Dashboard</a>' in html.get_content()


def test_warnings_go_to_chat_and_the_dingtalk_webhook(alertmanager: LocalAlertmanager) -> None:
    store = f"st-{uuid.uuid4().hex[:6]}"
    low = [alert("LowStockSoon", "warning", store_id=store, sku="C")]
    alertmanager.post(low)
    title = rf"\[FIRING:1\] LowStockSoon \(warning\) · store {store} · SKU C"
    attachment = alertmanager.http.wait(slack("/slack/chat-warning", title)).body["attachments"][0]
    assert attachment["color"] == "warning"
    assert f"<{runbook_url('LowStockSoon')}|Runbook>" in attachment["text"]

    def webhook(status: str) -> Callable[[Any], bool]:
        return lambda d: (
            isinstance(d, Delivery)
            and d.path == "/webhook/chat-warning"
            and d.body["groupLabels"].get("store_id") == store
            and d.body["status"] == status
        )

    body = alertmanager.http.wait(webhook("firing")).body
    assert body["receiver"] == "chat-warning"
    assert body["groupLabels"] == {"alertname": "LowStockSoon", "store_id": store}
    assert body["commonLabels"]["source"] == "salewatch"
    assert body["commonAnnotations"]["runbook_url"] == runbook_url("LowStockSoon")
    assert body["alerts"][0]["generatorURL"].endswith(f"var-store={store}")

    alertmanager.post(resolved(low))
    alertmanager.http.wait(webhook("resolved"))
    done = rf"\[RESOLVED:1\] LowStockSoon \(warning\) · store {store} · SKU C"
    alertmanager.http.wait(slack("/slack/chat-warning", done))
    assert not alertmanager.http.all(lambda d: store in json.dumps(d.body) and "page" in d.path)


def test_platform_alert_title_and_graph_link(alertmanager: LocalAlertmanager) -> None:
    topic = f"shop.t{uuid.uuid4().hex[:6]}"
    lag = [alert("SalewatchConsumerLagHigh", "warning", topic=topic)]
    alertmanager.post(lag)
    title = rf"\[FIRING:1\] SalewatchConsumerLagHigh \(warning\) · topic {re.escape(topic)}"
    text = alertmanager.http.wait(slack("/slack/chat-warning", title)).body["attachments"][0]
    assert "— topic " + topic in text["text"]
    assert "|Graph>" in text["text"] and "|Dashboard>" not in text["text"]
    alertmanager.post(resolved(lag))


def test_watchdog_pings_the_dead_mans_switch(alertmanager: LocalAlertmanager) -> None:
    alertmanager.post([alert("Watchdog", "none")])
    ping = alertmanager.http.wait(lambda d: d.path == "/webhook/deadmans-switch")
    assert ping.headers["authorization"] == "Bearer test-heartbeat-token"
    assert ping.body["commonLabels"]["alertname"] == "Watchdog"
    assert ping.body["status"] == "firing"
    assert not alertmanager.http.all(
        lambda d: d.path != "/webhook/deadmans-switch" and "Watchdog" in json.dumps(d.body)
    )


# -- inhibition -----------------------------------------------------------------------------


def wait_states(alertmanager: LocalAlertmanager, expected: dict[str, str], **labels: str) -> None:
    """alertname/channel/stage -> Alertmanager state (active or suppressed)."""

    def states() -> dict[str, str]:
        return {
            "/".join(
                a["labels"].get(k, "") for k in ("alertname", "channel", "stage", "severity")
            ): a["status"]["state"]
            for a in alertmanager.alerts(**labels)
        }

    deadline = time.monotonic() + 15
    while (current := states()) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert current == expected


def test_traffic_drop_mutes_conversion_drop_of_that_store_and_channel(
    alertmanager: LocalAlertmanager,
) -> None:
    store = f"st-{uuid.uuid4().hex[:6]}"
    alerts = [
        alert("TrafficDrop", "critical", store_id=store, channel="app"),
        alert("ConversionDrop", "warning", store_id=store, channel="app", stage="cart"),
        alert("ConversionDrop", "critical", store_id=store, channel="app", stage="pay"),
        alert("ConversionDrop", "warning", store_id=store, channel="web", stage="cart"),
    ]
    alertmanager.post(alerts)
    wait_states(
        alertmanager,
        {
            "TrafficDrop/app//critical": "active",
            "ConversionDrop/app/cart/warning": "suppressed",
            "ConversionDrop/app/pay/critical": "suppressed",
            "ConversionDrop/web/cart/warning": "active",
        },
        store_id=store,
    )
    alertmanager.post(resolved(alerts))


def test_worker_down_mutes_warning_conversion_drops_only(alertmanager: LocalAlertmanager) -> None:
    store = f"st-{uuid.uuid4().hex[:6]}"
    alerts = [
        alert("ConversionDrop", "warning", store_id=store, channel="web", stage="cart"),
        alert("ConversionDrop", "critical", store_id=store, channel="app", stage="pay"),
        alert("LowStockSoon", "warning", store_id=store, sku="D"),
    ]
    alertmanager.post(alerts)
    before = {
        "ConversionDrop/web/cart/warning": "active",
        "ConversionDrop/app/pay/critical": "active",
        "LowStockSoon///warning": "active",
    }
    wait_states(alertmanager, before, store_id=store)
    down = [alert("SalewatchWorkerDown", "critical", instance=f"{HOST}:1")]
    alertmanager.post(down)
    wait_states(
        alertmanager, {**before, "ConversionDrop/web/cart/warning": "suppressed"}, store_id=store
    )
    alertmanager.post(resolved(down))
    wait_states(alertmanager, before, store_id=store)
    alertmanager.post(resolved(alerts))


# -- templates on their own -----------------------------------------------------------------


def render(data: Json, template: str, tmp_path: Path, kind: str = "text") -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    return amtool(
        "template", "render", f"--template.glob={TEMPLATES / '*.tmpl'}",
        f"--template.data={data_file}", f"--template.type={kind}",
        f"--template.text={{{{ template {json.dumps(template)} . }}}}",
    )  # fmt: skip


def test_a_big_group_is_capped_and_counted(tmp_path: Path) -> None:
    """40 SKUs of a store selling out at midnight: a readable title and a bounded body."""
    alerts = [
        {
            "status": "firing",
            "labels": {
                "alertname": "StockOut",
                "severity": "critical",
                "store_id": "s1",
                "source": "salewatch",
                "sku": f"SKU{i:02d}",
            },
            "annotations": {
                "summary": f"SKU{i:02d} is out",
                "runbook_url": runbook_url("StockOut"),
            },
            "startsAt": "2026-11-11T00:00:01Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://grafana.test/d/salewatch-warroom?var-store=s1",
        }
        for i in range(40)
    ]
    common = {"alertname": "StockOut", "severity": "critical", "store_id": "s1"}
    data = {
        "receiver": "page-critical",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": "StockOut", "store_id": "s1"},
        "commonLabels": common,
        "commonAnnotations": {"runbook_url": runbook_url("StockOut")},
        "externalURL": "http://alertmanager.test",
    }
    title = render(data, "salewatch.title", tmp_path)
    assert title == (
        "[FIRING:40] StockOut (critical) · store s1 · SKU SKU00, SKU01, SKU02, SKU03, SKU04"
        " … (40 in all)"
    )
    text = render(data, "salewatch.text", tmp_path)
    assert text.count("\n- SKU") == 10 and "(10 of 40 shown)" in text
    html = render(data, "salewatch.email.html", tmp_path, kind="html")
    assert html.count("<li>") == 10 and "10 of 40 shown." in html
