"""`python -m streams worker`: run a salewatch worker (Faust's command line)."""

from __future__ import annotations

import sys

from streams.app import build_app
from streams.errors import ConfigError
from streams.settings import load_settings


def main() -> None:
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.exit(f"salewatch: {exc}")
    build_app(settings).main()


if __name__ == "__main__":
    main()
