"""leedl: the LeeDL tutorial experiments, one command per figure."""
import os

# torch's OpenMP threads busy-wait between parallel regions by default. When other processes share the cores
# (a laptop, a shared node, a parallel sweep) that spinning steals their CPU: an MNIST MLP epoch took 74 s with
# the default against 3 s with PASSIVE on the same loaded 2-core machine in the same minute. Set before torch is
# imported (leedl_cli is imported first by `leedl` and by run.py); a value you set yourself is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
