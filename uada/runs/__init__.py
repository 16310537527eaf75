"""A run directory and what is done with it: its files and checkpoints (`workdir`), training
(`trainer`), evaluation (`evaluation`, `eval_curve`), inference (`inference`), and how a run
executes (`distribute`, `precision`, `workdir_lock`, `preemption`, `write_errors`)."""
