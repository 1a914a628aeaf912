"""minicnn.memory: freed blocks stay in the process, so training steps stop page-faulting."""

import json
import os
import subprocess
import sys

import pytest

from minicnn import memory

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mallopt tuning applies to glibc on Linux only"
)

# Run a few training steps of a small CNN in a fresh process and print the page faults per step.
FAULTS_PER_STEP = """
import json, resource
import numpy as np
import minicnn as mc

model = mc.Sequential(
    [mc.Conv2D(32, 3, padding="same"), mc.ReLU(), mc.MaxPool2D(2), mc.Flatten(), mc.Dense(10)],
    input_shape=(1, 28, 28),
)
model.compile(mc.Adam())
rng = np.random.default_rng(0)
x = rng.random((64, 1, 28, 28), dtype=np.float32)  # conv output: 6.4 MB per step
y = rng.integers(0, 10, 64)
for _ in range(2):
    model.train_step(x, y)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.train_step(x, y)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps((after - before) / 5))
"""


def faults_per_step(setting: str) -> float:
    env = dict(os.environ, MINICNN_KEEP_FREED_MEMORY=setting, MINICNN_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_STEP], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@linux_only
def test_keep_freed_memory_applies_on_glibc():
    assert memory.keep_freed_memory() is True


@linux_only
def test_training_steps_stop_page_faulting():
    kept, returned = faults_per_step("1"), faults_per_step("0")
    # Returned to the kernel, the step's ~6 MB arrays fault in again page by page (1,000s).
    assert returned > 500, returned
    assert kept < returned / 10, (kept, returned)


@pytest.mark.parametrize(
    ("value", "enabled"), [("1", True), ("", True), ("0", False), ("off", False), ("No", False)]
)
def test_environment_switch(monkeypatch, value, enabled):
    monkeypatch.setenv("MINICNN_KEEP_FREED_MEMORY", value)
    assert memory.enabled_by_environment() is enabled
