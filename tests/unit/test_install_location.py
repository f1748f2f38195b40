"""`hivectl install` into a scratch root: an installation under /tmp (a checkout in CI, a
development venv) gets the location drop-in in every unit whose hardening would hide it,
the container and egress templates included; one under /opt gets none."""

from __future__ import annotations

from pathlib import Path

import pytest
from hyperhive.cli import install as inst


def fake_bin(where: Path) -> Path:
    bin_dir = where / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "hive-coordinator").write_text("#!/bin/sh\n")
    return bin_dir


def test_an_installation_under_tmp_is_bound_into_every_hardened_unit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    inst.install(root=root, bin_dir=fake_bin(tmp_path), start=False, say=lambda _: None)
    units = root / "etc/systemd/system"
    for unit in ("hive-coordinator", "hive-gateway", "hive-notify", "hive-agent@", "hive-egress@"):
        dropin = (units / f"{unit}.service.d" / "50-location.conf").read_text()
        assert f"BindReadOnlyPaths={tmp_path / 'venv'}" in dropin, unit
    templates = [u for u in inst.UNIT_FILES if "@" in u]
    assert all(u.removesuffix(".service") in inst.HARDENED for u in templates)


def test_an_installation_elsewhere_gets_no_location_dropin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inst, "HIDDEN_BY_HARDENING", ("/nowhere",))
    monkeypatch.setattr(inst, "platform_paths", lambda: [])
    root = tmp_path / "root"
    inst.install(root=root, bin_dir=fake_bin(tmp_path), start=False, say=lambda _: None)
    assert not list((root / "etc/systemd/system").glob("*.d/50-location.conf"))
