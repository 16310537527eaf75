"""A run directory and what is done with it: its files and checkpoints (`workdir`), training
(`trainer`), evaluation (`evaluation`), inference (`inference`: label maps of image files and a
SavedModel), how a run executes (`distribute`, `precision`, `workdir_lock`, `preemption`,
`write_errors`), the runs of the paper's tables (`paper_tables`: the paper's numbers;
`table_runs`: planned, trained or reused), and the pretraining of the demo's backbone
(`backbone_pretraining`)."""
