"""What the runner keeps off the console in its Ray workers (sweeps.quiet)."""

import subprocess
import sys

from tests.sweeps_running import ROOT

# A worker stopped by Ctrl-C while a weakref callback runs, then a real error in one.
SCRIPT = """
import gc, sys, weakref
from sweeps.quiet import quiet_ray_workers
quiet_ray_workers()
class A: pass
def stopped(_): raise KeyboardInterrupt
def broken(_): raise ValueError("a real error")
a, b = A(), A()
r1, r2 = weakref.ref(a, stopped), weakref.ref(b, broken)
del a; gc.collect()
print("after the stop", flush=True)
del b; gc.collect()
"""


def test_a_stopped_workers_ignored_interrupt_is_not_printed_and_other_errors_are():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "after the stop\n"
    assert "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.count("Exception ignored in") == 1 and "ValueError: a real error" in proc.stderr
