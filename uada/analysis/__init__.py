"""Analysis of trained models: the retrieval curve (Figure 4) and prediction grids (Figure 5)."""
