"""What the image and CI install is pinned: pyproject.toml pins every direct dependency,
the lock files (make lock) pin those and everything they pull in, with hashes; the image
installs from the lock on a base image pinned by digest; compose ships no default password."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.stack import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCKS = {"requirements.lock": (), "requirements-dev.lock": ("dev", "rocksdb")}


def locked(name: str) -> dict[str, str]:
    """package -> version of one lock file; every entry carries at least one hash."""
    text = (REPO / name).read_text()
    entries = re.findall(
        r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
    )
    pinned = {canonicalize_name(package): version for package, version, _ in entries}
    requirement_lines = [line for line in text.splitlines() if line and line[0] not in "# "]
    assert len(requirement_lines) == len(pinned), f"{name}: an entry without a pin or hash"
    return pinned


def direct(extras: tuple[str, ...]) -> list[Requirement]:
    found = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in PYPROJECT["optional-dependencies"][extra]]
    return [r for r in found if canonicalize_name(r.name) != "salewatch"]


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_direct_dependency_is_locked_at_its_pin(lock: str) -> None:
    pinned = locked(lock)
    for requirement in direct(LOCKS[lock]):
        (spec,) = requirement.specifier  # exactly one: ==
        assert spec.operator == "==", f"{requirement}: pin it with =="
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None and spec.contains(version), (
            f"{lock}: {requirement} is locked at {version}: run make lock"
        )


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_a_lock_names_no_path_of_the_machine_it_was_made_on(lock: str) -> None:
    text = (REPO / lock).read_text()
    assert "file://" not in text and "--find-links" not in text and "--index-url" not in text


def test_the_image_installs_the_lock_on_a_base_pinned_by_digest() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", dockerfile, re.M)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    base = compose["services"]["worker"]["build"]["args"]["PYTHON_IMAGE"]
    assert base.startswith("${SALEWATCH_PYTHON_IMAGE:?")  # no default: a digest or nothing


def test_compose_has_no_anonymous_grafana_and_no_password_in_the_file() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    worker = compose["services"]["worker"]["environment"]
    assert worker["SALEWATCH_WEB_AUTH_TOKEN"].startswith("${SALEWATCH_WEB_AUTH_TOKEN:?")
