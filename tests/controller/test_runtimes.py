"""The runtimes manifest: loading, kind resolution, defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.errors import InvalidInput
from controller.runtimes import DEFAULT_MANIFEST, Manifest, load_manifest


def write_manifest(tmp_path: Path, runtimes: dict[str, Any]) -> Path:
    path = tmp_path / "runtimes.json"
    path.write_text(json.dumps({"runtimes": runtimes}))
    return path


def runtime(kind: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "image": f"img/{kind.replace(':', '-')}", **extra}


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    return load_manifest(
        write_manifest(
            tmp_path,
            {
                "python": [runtime("python:3.10"), runtime("python:3.12", default=True)],
                "nodejs": [
                    runtime("nodejs:16", deprecated=True),
                    runtime("nodejs:20", default=True),
                    runtime("nodejs:22"),
                ],
                "go": [runtime("go:1.21")],
            },
        )
    )


NODE_MAJORS = ("18", "20", "22", "24", "26")  # Adobe's current kinds (spec/adobe-runtime.md §1.2)


def test_packaged_manifest_loads() -> None:
    manifest = load_manifest()
    assert DEFAULT_MANIFEST.name == "runtimes.json"
    assert manifest == load_manifest(DEFAULT_MANIFEST)
    assert set(manifest.families) == {"nodejs", "python"}
    assert manifest.default_kind == "nodejs:22"
    assert manifest.valid_kinds() == [
        "blackbox",
        *(f"nodejs:{major}" for major in NODE_MAJORS),
        "python:3.11",
        "sequence",
    ]
    for major in NODE_MAJORS:
        nodejs = manifest.get(f"nodejs:{major}")
        assert nodejs is not None
        assert nodejs.default == (major == "22")
        assert not nodejs.deprecated
        assert nodejs.image == f"homerun/action-nodejs-v{major}:latest"
        cells = [(cell.count, cell.memory) for cell in nodejs.stem_cells]
        assert cells == ([(2, 256)] if major == "22" else [])
    python = manifest.get("python:3.11")
    assert python is not None
    assert python.default
    assert python.image == "homerun/action-python-v311:latest"
    assert manifest.get("ruby:3") is None


def test_packaged_manifest_has_one_default_per_family_and_an_image_per_kind() -> None:
    manifest = load_manifest()
    for family, runtimes in manifest.families.items():
        assert [r.kind for r in runtimes if r.default] == [manifest.resolve(f"{family}:default")]
        assert all(r.image and r.kind.startswith(f"{family}:") for r in runtimes)
    images = [r.image for runtimes in manifest.families.values() for r in runtimes]
    assert len(images) == len(set(images))


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        *((f"nodejs:{major}", f"nodejs:{major}") for major in NODE_MAJORS),
        ("nodejs:default", "nodejs:22"),
        ("python:3.11", "python:3.11"),
        ("python:default", "python:3.11"),
        ("sequence", "sequence"),
        ("blackbox", "blackbox"),
    ],
)
def test_packaged_manifest_resolves(requested: str, resolved: str) -> None:
    assert load_manifest().resolve(requested) == resolved


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        ("nodejs:default", "nodejs:20"),
        ("nodejs:20", "nodejs:20"),
        ("nodejs:22", "nodejs:22"),
        ("python:default", "python:3.12"),
        ("python:3.10", "python:3.10"),
        ("go:1.21", "go:1.21"),
        ("sequence", "sequence"),
        ("blackbox", "blackbox"),
    ],
)
def test_resolve_known_kinds(manifest: Manifest, requested: str, resolved: str) -> None:
    assert manifest.resolve(requested) == resolved


def test_default_kind_prefers_nodejs(manifest: Manifest) -> None:
    assert manifest.default_kind == "nodejs:20"


def test_default_kind_without_nodejs_is_first_family_with_a_default(tmp_path: Path) -> None:
    path = write_manifest(
        tmp_path,
        {
            "python": [runtime("python:3.12", default=True)],
            "go": [runtime("go:1.21")],
            "java": [runtime("java:17", default=True)],
        },
    )
    assert load_manifest(path).default_kind == "java:17"


def test_valid_kinds_lists_every_kind_sorted(manifest: Manifest) -> None:
    assert manifest.valid_kinds() == [
        "blackbox",
        "go:1.21",
        "nodejs:16",
        "nodejs:20",
        "nodejs:22",
        "python:3.10",
        "python:3.12",
        "sequence",
    ]


@pytest.mark.parametrize(
    "requested", ["cobol:1", "nodejs:14", "nodejs", "ruby:default", "go:default", "", "NODEJS:20"]
)
def test_resolve_unknown_kind_lists_valid_kinds(manifest: Manifest, requested: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        manifest.resolve(requested)
    assert caught.value.message == (
        f"The specified runtime '{requested}' is not supported by this platform. Valid values "
        "are: 'blackbox', 'go:1.21', 'nodejs:16', 'nodejs:20', 'nodejs:22', 'python:3.10', "
        "'python:3.12', 'sequence'."
    )


def test_resolve_deprecated_kind(manifest: Manifest) -> None:
    with pytest.raises(InvalidInput) as caught:
        manifest.resolve("nodejs:16")
    assert caught.value.message == (
        "The 'nodejs:16' runtime is no longer supported. You may read and delete but not "
        "update or invoke this action."
    )


def test_manifest_without_default_fails_to_load(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, {"nodejs": [runtime("nodejs:20")], "go": [runtime("go:1")]})
    with pytest.raises(ValueError, match="no default kind") as caught:
        load_manifest(path)
    # load_manifest's contract: every error names the file, so an operator can find it.
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        "{}",
        json.dumps({"runtimes": {"nodejs": [{"kind": "nodejs:20"}]}}),
        json.dumps({"runtimes": {"nodejs": [runtime("nodejs 20", default=True)]}}),
        json.dumps({"runtimes": {"nodejs": [runtime("nodejs:20", default=True, extra=1)]}}),
        json.dumps({"runtimes": {}, "unexpected": True}),
        json.dumps(
            {
                "runtimes": {
                    "nodejs": [
                        runtime("nodejs:20", default=True, stemCells=[{"count": -1, "memory": 1}])
                    ]
                }
            }
        ),
    ],
)
def test_invalid_manifest_fails_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"broken\.json"):
        load_manifest(path)


def test_missing_manifest_file_fails_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"absent\.json"):
        load_manifest(tmp_path / "absent.json")
