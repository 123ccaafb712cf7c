"""The allocator settings applied at import (mesa_jax/_malloc.py): on by default on glibc,
off with MESA_JAX_TUNE_MALLOC=0. (Their effect on speed is measured in benchmarks.)"""

import os
import platform
import subprocess
import sys

import pytest


def _tuned(env_value):
    env = dict(os.environ)
    env.pop("MESA_JAX_TUNE_MALLOC", None)
    if env_value is not None:
        env["MESA_JAX_TUNE_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", "import mesa_jax._malloc as m; print(m.TUNED)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tuned_by_default_on_glibc():
    assert _tuned(None) == "True"


def test_switch_leaves_the_allocator_alone():
    assert _tuned("0") == "False"
