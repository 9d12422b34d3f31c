"""The command line of files generated from code (Prometheus rules, Grafana dashboards):
write them, or with `--check` write nothing and exit 1 naming each file that is stale,
missing or unexpected, so CI catches a generated file edited by hand or left behind."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["generate_main", "stale_files"]


def stale_files(output_dir: Path, suffix: str, rendered: dict[str, str]) -> dict[str, str]:
    """What is wrong with each `*suffix` file of `output_dir` that differs from `rendered`."""
    existing = {path.name for path in output_dir.glob(f"*{suffix}")}
    problems = {name: "unexpected" for name in existing - rendered.keys()}
    for name, text in rendered.items():
        if name not in existing:
            problems[name] = "missing"
        elif (output_dir / name).read_text(encoding="utf-8") != text:
            problems[name] = "stale"
    return dict(sorted(problems.items()))


def generate_main(
    module: str,
    description: str,
    output_dir: Path,
    suffix: str,
    render_all: Callable[[], dict[str, str]],
    argv: Sequence[str] | None = None,
) -> int:
    """`python -m <module> [--check] [--output-dir DIR]`; returns the exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if files differ"
    )
    parser.add_argument("--output-dir", type=Path, default=output_dir)
    args = parser.parse_args(argv)
    directory: Path = args.output_dir
    rendered = render_all()
    if args.check:
        problems = stale_files(directory, suffix, rendered)
        for name, problem in problems.items():
            print(f"{directory / name} is {problem}; run python -m {module}", file=sys.stderr)
        return 1 if problems else 0
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (directory / name).write_text(text, encoding="utf-8")
    return 0
