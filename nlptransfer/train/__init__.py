"""Training: the one loop (loop.py, on Accelerate) on narrow settings (settings.py), its state and checkpoints
(state.py), caches of frozen layers' output (cache.py), what a strategy's hook may change before the loop starts
(plan.py), the encoder stage that trains an encoder in a folder of its own (encoder_stage.py), listeners of its
events (events.py) and the CPU speed-ups it applies while it runs (cpu.py). Import the module you need; this package
imports nothing."""
