"""Training: the one loop (loop.py, on Accelerate), its loss terms (objectives.py, a registry), its state and
checkpoints (state.py), caches of frozen layers' output (cache.py), listeners of its events (events.py) and the
CPU speed-ups it applies while it runs (cpu.py). Import the module you need; this package imports nothing."""
