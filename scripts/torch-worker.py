"""Runs the PyTorch reference's bench.py (argv[1], then its own arguments)
with as many intra-op threads as there are cores this process may run on.

bench.py sets torch.set_num_threads(2), which on a process pinned to one
core (scripts/results.sh pins the comparison with taskset) makes two
threads take turns on that core and slows PyTorch by a third: a user with
one core runs one thread, and so does this wrapper.
"""
import os
import runpy
import sys

import torch

cores = len(os.sched_getaffinity(0))
set_threads = torch.set_num_threads
torch.set_num_threads = lambda n: set_threads(min(n, cores))
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
