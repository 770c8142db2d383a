"""Runs ``tests/_suite/multidevice_cases.py`` in a child process with 8 virtual CPU devices.

XLA fixes the number of host devices when it starts, so the cases cannot share this
process; the child's pytest report is shown when it fails.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


# Three children, so that pytest-xdist runs them on different workers; together they
# select every case of the module exactly once.
GROUPS = {
    "registry-shard_map": "registry_loss_with_axis_name_equals_one_device",
    "partial_fc": "partial_fc",
    "rest": "not registry_loss_with_axis_name_equals_one_device and not partial_fc",
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_multidevice_cases_on_8_cpu_devices(group):
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_PLATFORMS="cpu",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",
            "-k",
            GROUPS[group],
            "tests/_suite/multidevice_cases.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert " passed" in report and "skipped" not in report, report
