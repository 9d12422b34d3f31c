"""`salewatch top`: the live war room, refreshed every second from a worker.

On a terminal it takes the full screen (rich) and quits on `q` or Ctrl-C; when stdout is
not a terminal (a pipe, a log) it prints one plain line per interval instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live

from warroom.board import Board
from warroom.collect import read_board
from warroom.screen import plain_line, render
from warroom.worker_api import WorkerApi

__all__ = ["add_arguments", "run", "watch"]

DEFAULT_URL = "http://127.0.0.1:6066"
TERMINAL_INTERVAL_S = 1.0
PLAIN_INTERVAL_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"any worker (default {DEFAULT_URL})")
    parser.add_argument(
        "--interval", type=float, default=None,
        help=f"seconds between refreshes (default {TERMINAL_INTERVAL_S:g} on a terminal,"
        f" {PLAIN_INTERVAL_S:g} for plain lines)",
    )  # fmt: skip
    parser.add_argument(
        "--stores", type=int, default=8, help="stores (by GMV) whose windows and stock are read"
    )
    parser.add_argument("--plain", action="store_true", help="plain lines even on a terminal")


def run(args: argparse.Namespace) -> int:
    if args.interval is not None and args.interval <= 0:
        print("salewatch top: --interval must be positive", file=sys.stderr)
        return 2
    if args.stores < 1:
        print("salewatch top: --stores must be at least 1", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(args.url, args.interval, args.stores, plain=args.plain)
    return 0


def watch(
    url: str,
    interval_s: float | None = None,
    max_stores: int = 8,
    note: Callable[[], str] | None = None,
    plain: bool = False,
) -> None:
    """Show the worker at `url` until `q` or Ctrl-C; `note()` adds a line of the caller's."""
    api = WorkerApi(url)

    def look() -> Board:
        board = read_board(api, time.time_ns() // 1_000_000, max_stores)
        if note is not None:
            board.note = note()
        return board

    try:
        if sys.stdout.isatty() and not plain:
            _full_screen(look, interval_s or TERMINAL_INTERVAL_S)
        else:
            _plain(look, interval_s or PLAIN_INTERVAL_S)
    except KeyboardInterrupt:
        pass


def _full_screen(look: Callable[[], Board], interval_s: float) -> None:
    console = Console()
    with _keys() as quit_pressed, Live(console=console, screen=True, auto_refresh=False) as live:
        while not quit_pressed.is_set():
            started = time.monotonic()
            live.update(render(look()), refresh=True)
            quit_pressed.wait(max(0.0, interval_s - (time.monotonic() - started)))


def _plain(look: Callable[[], Board], interval_s: float) -> None:
    while True:
        started = time.monotonic()
        print(plain_line(look()), flush=True)
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))


@contextlib.contextmanager
def _keys() -> Iterator[threading.Event]:
    """An event set when `q` is typed; the terminal reads keys one by one meanwhile (Ctrl-C
    still interrupts) and is restored on the way out."""
    pressed = threading.Event()
    if not sys.stdin.isatty():
        yield pressed
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready and os.read(fd, 1) in (b"q", b"Q"):
                pressed.set()
                return

    tty.setcbreak(fd)
    reader = threading.Thread(target=read, name="salewatch-top-keys", daemon=True)
    reader.start()
    try:
        yield pressed
    finally:
        done.set()
        reader.join(1.0)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
