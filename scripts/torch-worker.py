"""Runs the PyTorch reference's bench.py (argv[1], then its own arguments)
with as many intra-op threads as there are cores this process may run on,
or NETSSM_TORCH_THREADS when that is fewer.

bench.py sets torch.set_num_threads(2), which on a process pinned to one
core (scripts/results.sh pins the comparison with taskset) makes two
threads take turns on that core and slows PyTorch by a third: a user with
one core runs one thread, and so does this wrapper. With more cores
scripts/bench-vs-torch.sh runs it with one thread and with all of them and
keeps the faster (one-token decoding steps can be faster on one thread).
"""
import os
import runpy
import sys

import torch

cores = len(os.sched_getaffinity(0))
cap = os.environ.get("NETSSM_TORCH_THREADS")
if cap:
    cores = max(1, min(cores, int(cap)))
set_threads = torch.set_num_threads
torch.set_num_threads = lambda n: set_threads(min(n, cores))
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
