"""Run real salewatch workers as subprocesses against the real broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kafka import delete_topics
from tests.support.stack import REPO, Stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Worker:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    target_file: Path
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.url + path)

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stage_1_pid(self) -> int:
        """The worker's stage-1 process (beside it: multiprocessing's resource tracker)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        (stage_1,) = (
            int(child)
            for child in children
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        )
        return stage_1

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._dump_stacks()
                self.process.kill()
                self.process.wait()
        self.target_file.unlink(missing_ok=True)

    def _dump_stacks(self) -> None:
        """A worker that does not stop in time: its Python stacks (py-spy) go beside its log,
        so the test's failure shows where it hung."""
        dump = self.log_path.with_suffix(".stacks.txt")
        py_spy = Path(sys.executable).parent / "py-spy"
        command = [str(py_spy), "dump", "--locals", "--pid", str(self.process.pid)]
        with dump.open("w") as out:
            subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)


@dataclass
class WorkerFactory:
    """Workers of one test share an app id and fresh topic names (`names`)."""

    stack: Stack
    tmp: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    started: list[Worker] = field(default_factory=list)
    repo: Path = REPO  # the source tree workers run from (a benchmark's baseline: another)
    kafka_options: dict[str, Any] = field(default_factory=dict)  # security, for the cleanup
    targets_dir: Path | None = None  # where Prometheus finds the workers: the stack's by default

    @property
    def app_id(self) -> str:  # also the consumer group of stages 2 and 3; stage 1's: -ingest
        return f"salewatch-{self.run_id}"

    @property
    def topic_prefix(self) -> str:
        return f"t{self.run_id}.shop."

    @property
    def output_prefix(self) -> str:
        return f"t{self.run_id}.salewatch."

    def input_topic(self, kind: str) -> str:
        return self.topic_prefix + kind

    def output_topic(self, name: str) -> str:
        return self.output_prefix + name

    def env(self, **settings: object) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SALEWATCH_KAFKA_BOOTSTRAP=self.stack.kafka_bootstrap,
            SALEWATCH_APP_ID=self.app_id,
            SALEWATCH_TOPIC_PREFIX=self.topic_prefix,
            SALEWATCH_OUTPUT_PREFIX=self.output_prefix,
        )
        env.update({f"SALEWATCH_{name.upper()}": str(value) for name, value in settings.items()})
        return env

    def start(
        self, wait_healthy: bool = True, module: str = "streams", **settings: object
    ) -> Worker:
        """Start `python -m <module> worker`: a salewatch worker, or another Faust app.
        A data directory of its own unless `data_dir` says (a stopped worker's: a restart),
        a free web port unless `web_port` says."""
        name = f"w{len(self.started)}"
        port = int(str(settings.pop("web_port", 0))) or free_port()
        data_dir = Path(str(settings.pop("data_dir", self.tmp / name)))
        log_path = self.tmp / f"{name}.log"
        env = self.env(web_port=port, data_dir=data_dir, **settings)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "worker", "-l", "info"],
                cwd=self.repo,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        targets_dir = self.targets_dir or self.stack.targets_dir
        target_file = targets_dir / f"{self.run_id}-{name}.json"
        target_file.write_text(
            json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"run": self.run_id}}])
        )
        worker = Worker(name, port, process, log_path, target_file, data_dir)
        self.started.append(worker)
        if wait_healthy:
            self.wait_healthy(worker, "/health" if module == "streams" else "/count")
        return worker

    def wait_healthy(self, worker: Worker, path: str = "/health", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.log()[-4000:]}")
            try:
                if worker.get(path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker not healthy in {timeout}s:\n{worker.log()[-4000:]}")

    def stop_all(self) -> None:
        """Stop the workers, then delete the run's topics (inputs, outputs, changelogs)."""
        for worker in self.started:
            worker.stop()
        delete_topics(
            self.stack.kafka_bootstrap,
            [f"t{self.run_id}.", self.app_id],
            **self.kafka_options,
        )
