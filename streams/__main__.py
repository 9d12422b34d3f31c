"""`python -m streams worker`: run a salewatch worker (Faust's command line)."""

from __future__ import annotations

import sys

from streams.contract.errors import ConfigError
from streams.runtime.app import build_app
from streams.runtime.collector import freeze_startup_objects
from streams.runtime.settings import load_settings


def main() -> None:
    try:
        app = build_app(load_settings())
    except ConfigError as exc:
        sys.exit(f"salewatch: {exc}")
    freeze_startup_objects()
    app.main()


if __name__ == "__main__":
    main()
