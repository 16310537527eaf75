"""The paper's tables: which experiment's run fills each cell, tested on which domain, and the
paper's number.

Each table (`TABLES`) lists its cells: the experiment file (`<experiments_dir>/<name>.flags`) whose
run fills the cell, the domain the cell is tested on, and the paper's number. `TABLES` is the one
home of the paper's numbers: each experiment file's header names its table and row here instead
of repeating them. Beyond the paper, every table carries the bounds of adaptation (a source-only
row and the target oracle, `ORACLE`: trained on the target's labels with the same budget) and its
comparisons (`Table.differences`).

`uada.runs.table_runs` plans and trains the runs of a table; `uada.analysis.tables` renders it
with the measured numbers.
"""

import dataclasses

# Not in the paper: DAN trained source-only on the target's labels, the upper bound of the tables.
ORACLE = "gta2cs_target_oracle"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One number of a table: the experiment whose run fills it, tested on `role`.

    `role` is `"source"`, `"target"` or `"unseen:<i>"` (the run's i-th unseen domain); `paper` is
    the paper's % mIoU, or None where the paper has no number. `statistics` is the
    `--adapt_statistics` of the cell's evaluation: `"none"` (the run's final evaluation) or
    `"target"` (AdaBN, `uada.models.adabn`: each domain with its own images' statistics).
    """

    experiment: str | None
    role: str
    paper: float | None
    statistics: str = "none"

    @property
    def key(self):
        """The cell's entry in `run_all`'s results: the experiment, `+adabn` with AdaBN."""
        return self.experiment if self.statistics == "none" else f"{self.experiment}+adabn"


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of the paper: its rows of cells, in the paper's layout and numbering.

    `differences` are the comparisons `render` reports, each `(a, b)` for "a - b": two row
    labels (compared column by column) or two `(row label, column)` cells.
    """

    number: int
    title: str
    row_header: str
    columns: tuple
    rows: tuple  # ((row label, (Cell or None per column)), ...)
    demo: bool = True  # whether `--demo` can reproduce it
    differences: tuple = ()


def _same_run(experiment, roles, papers):
    return tuple(Cell(experiment, role, paper) for role, paper in zip(roles, papers, strict=True))


TABLES = {
    1: Table(
        1,
        "Table 1: target images in the batch without adaptation (GTA5 source, % mIoU)",
        "normalization (batch)",
        ("GTA5", "Cityscapes"),
        (
            ("BN (G,G)", _same_run("table1_bn_source_only", ("source", "target"), (62.1, 34.8))),
            (
                "BN (G,G,C,C)",
                _same_run("table1_bn_multi_domain", ("source", "target"), (61.2, 22.1)),
            ),
            (
                "DAN (G,G,C,C)",
                _same_run("table1_dan_multi_domain", ("source", "target"), (61.9, 35.0)),
            ),
            # Not in the paper: the target oracle (trained on C's labels) bounds the table.
            ("target oracle (C,C)", _same_run(ORACLE, ("target", "source"), (None, None))),
        ),
        differences=(
            ("BN (G,G,C,C)", "BN (G,G)"),
            ("DAN (G,G,C,C)", "BN (G,G)"),
            ("target oracle (C,C)", "BN (G,G)"),
        ),
    ),
    2: Table(
        2,
        "Table 2: normalization layers, GTA5 -> Cityscapes, tested on Cityscapes (% mIoU)",
        "normalization",
        ("source only", "UADA"),
        tuple(
            (
                label,
                (
                    Cell(f"table2_{norm}_source_only", "target", before),
                    Cell(f"table2_{norm}_uada", "target", after),
                ),
            )
            for label, norm, before, after in (
                ("none", "none", 26.5, 28.4),
                ("batch", "batch", 34.8, 29.6),
                ("instance", "instance", 30.3, 31.4),
                ("split batch", "split_batch", 34.8, 35.4),
                ("DAN", "dan", 34.8, 38.2),
            )
        )
        # Not in the paper: the source-only DAN model tested with the target's own statistics
        # (AdaBN, Li et al. 2016), the classic alternative to DAN's source statistics.
        + (
            (
                "DAN + AdaBN (target statistics)",
                (Cell("table2_dan_source_only", "target", None, statistics="target"), None),
            ),
            ("target oracle (DAN)", (Cell(ORACLE, "source", None), None)),
        ),
        differences=tuple(
            ((label, "UADA"), (label, "source only"))
            for label in ("none", "batch", "instance", "split batch", "DAN")
        )
        + (
            (("DAN + AdaBN (target statistics)", "source only"), ("DAN", "source only")),
            (("target oracle (DAN)", "source only"), ("DAN", "source only")),
        ),
    ),
    3: Table(
        3,
        "Table 3: weight lambda of the confusion loss, UADA with DAN, tested on the target "
        "(% mIoU)",
        "lambda",
        ("GTA5 -> Cityscapes", "Cityscapes -> Mapillary"),
        tuple(
            (
                label,
                (
                    Cell(f"table3_gta5_cityscapes_lambda_{label}", "target", gta)
                    if gta is not None
                    else None,
                    Cell(f"table3_cityscapes_mapillary_lambda_{label}", "target", cs)
                    if cs is not None
                    else None,
                ),
            )
            for label, gta, cs in (
                ("1e-5", None, 42.6),
                ("1e-4", 33.6, 43.0),
                ("1e-3", 34.6, 45.0),
                ("1e-2", 38.2, 37.6),
                ("1e-1", 34.6, None),
            )
        )
        + (
            ("source only (DAN)", (Cell("gta2cs_source_only", "target", None), None)),
            ("target oracle (DAN)", (Cell(ORACLE, "source", None), None)),
        ),
        differences=tuple(
            ((label, "GTA5 -> Cityscapes"), ("source only (DAN)", "GTA5 -> Cityscapes"))
            for label in ("1e-4", "1e-3", "1e-2", "1e-1", "target oracle (DAN)")
        ),
    ),
    4: Table(
        4,
        "Table 4: GTA5 -> Cityscapes with DAN, tested on every domain (% mIoU)",
        "training",
        ("GTA5", "Cityscapes", "Mapillary", "ApolloScape"),
        (
            (
                "source only",
                _same_run(
                    "gta2cs_source_only",
                    ("source", "target", "unseen:0", "unseen:1"),
                    (62.2, 34.8, 37.1, 25.3),
                ),
            ),
            (
                "UADA",
                _same_run(
                    "gta2cs",
                    ("source", "target", "unseen:0", "unseen:1"),
                    (62.7, 38.2, 38.5, 27.4),
                ),
            ),
            (
                "target oracle",
                _same_run(
                    ORACLE,
                    ("target", "source", "unseen:0", "unseen:1"),
                    (None, None, None, None),
                ),
            ),
        ),
        differences=(("UADA", "source only"), ("target oracle", "source only")),
    ),
    6: Table(
        6,
        "Table 6: Cityscapes -> Mapillary with DAN, tested on every domain (% mIoU)",
        "training",
        ("Cityscapes", "Mapillary", "ApolloScape"),
        (
            (
                "source only",
                _same_run(
                    "cs2mapillary_source_only",
                    ("source", "target", "unseen:0"),
                    (63.6, 43.2, 25.8),
                ),
            ),
            (
                "UADA",
                _same_run(
                    "cs2mapillary",
                    ("source", "target", "unseen:0"),
                    (64.0, 45.0, 27.1),
                ),
            ),
        ),
        demo=False,
    ),
}


def cells_of(experiment):
    """The cells with the paper's numbers that `experiment`'s run fills, in table order.

    Returns:
        `[(table number, row label, column, Cell), ...]`.
    """
    return [
        (number, label, column, cell)
        for number, spec in TABLES.items()
        for label, cells in spec.rows
        for column, cell in zip(spec.columns, cells, strict=True)
        if cell is not None and cell.experiment == experiment and cell.paper is not None
    ]


def all_experiments():
    """Every experiment named in `TABLES`, in table order."""
    names = [
        cell.experiment
        for spec in TABLES.values()
        for _, cells in spec.rows
        for cell in cells
        if cell is not None and cell.experiment is not None
    ]
    return list(dict.fromkeys(names))
