"""tools/misc/idle_cores.py: the demo's torch threads follow the free
cores."""
import os
import subprocess
import sys
import time

from tests.helpers import ROOT, tool_module


def test_free_cores_fall_when_every_core_is_busy():
    """With one spinning process per core (same priority), the spinners of
    the measurement get about half of each core: fewer free cores are
    reported than there are cores, and never fewer than 1."""
    idle = tool_module('tools/misc/idle_cores.py')
    cores = os.cpu_count()
    assert 1 <= idle.free_cores(0.3) <= cores
    if cores == 1:
        return
    spin = 'import time\nend = time.time() + 20\nwhile time.time() < end: pass'
    hogs = [subprocess.Popen([sys.executable, '-c', spin])
            for _ in range(cores)]
    try:
        time.sleep(0.2)
        assert idle.free_cores(0.5) < cores
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_prints_one_number():
    out = subprocess.run([sys.executable, 'tools/misc/idle_cores.py',
                          '--seconds', '0.2'], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert 1 <= int(out) <= os.cpu_count()
