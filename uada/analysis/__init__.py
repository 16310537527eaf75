"""What is computed from trained runs.

- `tables`: the paper's tables with the measured numbers (`python -m uada.reproduce`);
- `eval_curve`: every kept checkpoint of a run evaluated, with label-free selection signals
  (`python -m uada.evaluate --checkpoints=all`);
- `checkpoint_selection`: those signals and how they rank checkpoints (`python -m uada.selection`);
- `retrieval_curve`: the retrieval curve of the paper's Figure 4 (`python -m uada.retrieval`);
- `prediction_grid`: prediction grids as in the paper's Figure 5 (`python -m uada.predict_grid`);
- `figures`: every figure, written with matplotlib (`python -m uada.diagnostics`).
"""
