"""The paper's tables: which experiment's run fills each cell, tested on which domain, and the
paper's number.

Each table (`TABLES`) lists its cells: the experiment file (`<experiments_dir>/<name>.flags`) whose
run fills the cell, the domain the cell is tested on, and the paper's number. `TABLES` is the one
home of the paper's numbers: each experiment file's header names its table and row here instead
of repeating them. Beyond the paper, every table carries the bounds of adaptation (a source-only
row and the target oracle, `ORACLE`: trained on the target's labels with the same budget) and its
comparisons (`Table.differences`). `TABLES["methods"]` is not the paper's: the field's adaptation
methods beside UADA, each with DAN and with BN (the methods study of docs/RESULTS.md), with each
method's published number for orientation only.

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
    """A table: its rows of cells, in the paper's layout and numbering, or a study's own.

    `key` is the paper's table number (1, 2, 3, 4, 6) or, for a table that is not the paper's,
    its name (`"methods"`); `paper` says which (`--table=all` reproduces the paper's tables).
    `differences` are the comparisons `render` reports, each `(a, b)` for "a - b": two row
    labels (compared column by column) or two `(row label, column)` cells (two columns of one
    row, too); `comparisons()` lists them as cell pairs. `published` holds, per row label, a
    published number of another setting, printed beside the row for orientation only. With
    `bound` and `baseline` (row labels), `render` reports the room between them (the target
    oracle minus source only) and each other row's share of it.
    """

    key: int | str
    title: str
    row_header: str
    columns: tuple
    rows: tuple  # ((row label, (Cell or None per column)), ...)
    demo: bool = True  # whether `--demo` can reproduce it
    differences: tuple = ()
    paper: bool = True
    published: tuple = ()  # ((row label, text), ...)
    bound: str | None = None
    baseline: str | None = None

    @property
    def file_name(self):
        """`reproduce`'s default Markdown file: `table<number>.md` or `table_<name>.md`."""
        return f"table{self.key}.md" if isinstance(self.key, int) else f"table_{self.key}.md"

    def labels(self):
        """The row labels, in order."""
        return [label for label, _ in self.rows]

    def comparisons(self):
        """`differences` as `((row, column), (row, column))` pairs, row pairs column by column."""
        pairs = []
        for a, b in self.differences:
            if isinstance(a, str):  # two rows, column by column
                pairs += [((a, column), (b, column)) for column in self.columns]
            else:
                pairs.append((a, b))
        return pairs

    def select(self, rows):
        """This table with only the rows labelled `rows` (in the table's order) and the
        comparisons between them, e.g. for a confirmation that runs only the cells it needs.

        Raises:
            ValueError: a label is not a row of this table (the message lists the rows).
        """
        unknown = [label for label in rows if label not in self.labels()]
        if unknown or not rows:
            raise ValueError(
                f"`rows` must be row labels of table {self.key}, one or more of "
                f"{self.labels()}. Received: rows={list(rows)!r}"
            )
        kept = [label for label in self.labels() if label in rows]
        return dataclasses.replace(
            self,
            rows=tuple((label, cells) for label, cells in self.rows if label in kept),
            differences=tuple(
                (a, b) for a, b in self.comparisons() if a[0] in kept and b[0] in kept
            ),
            published=tuple((label, text) for label, text in self.published if label in kept),
        )


def _same_run(experiment, roles, papers):
    return tuple(Cell(experiment, role, paper) for role, paper in zip(roles, papers, strict=True))


# Not in the paper: the field's adaptation methods beside UADA, each with DAN and BN (the methods
# study of docs/RESULTS.md). Each cell is a run on GTA5 -> Cityscapes tested on Cityscapes; AdaBN
# is the source-only run evaluated with the target's own statistics.
_METHODS = (  # (row label, experiment with DAN, experiment with BN)
    ("UADA", "table2_dan_uada", "table2_batch_uada"),
    ("MinEnt", "gta2cs_minent", "gta2cs_minent_batch"),
    ("AdvEnt", "gta2cs_advent", "gta2cs_advent_batch"),
    ("AdaptSegNet", "gta2cs_adaptsegnet", "gta2cs_adaptsegnet_batch"),
    ("self-training", "gta2cs_self_training", "gta2cs_self_training_batch"),
)
_SOURCE_ONLY = ("table2_dan_source_only", "table2_batch_source_only")
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
    "methods": Table(
        "methods",
        "Methods: adaptation methods with DAN and with BN, GTA5 -> Cityscapes, tested on "
        "Cityscapes (% mIoU; not a table of the paper)",
        "method",
        ("DAN", "BN"),
        (
            ("source only", tuple(Cell(name, "target", None) for name in _SOURCE_ONLY)),
            (
                "AdaBN",
                tuple(Cell(name, "target", None, statistics="target") for name in _SOURCE_ONLY),
            ),
        )
        + tuple(
            (label, (Cell(dan, "target", None), Cell(batch, "target", None)))
            for label, dan, batch in _METHODS
        )
        + (("target oracle (DAN)", (Cell(ORACLE, "source", None), None)),),
        # The family of the study: each method minus source only in each column (12), DAN minus BN
        # in each row (7); the oracle is a bound, not a comparison.
        differences=tuple(
            (label, "source only") for label in ("AdaBN", *(row[0] for row in _METHODS))
        )
        + tuple(
            ((label, "DAN"), (label, "BN"))
            for label in ("source only", "AdaBN", *(row[0] for row in _METHODS))
        ),
        paper=False,
        # Each method's published GTA5 -> Cityscapes mIoU on the full datasets, with its network:
        # orientation only (other networks, resolutions and budgets than uada's; not the demo).
        published=(
            ("source only", "DAN 34.8, BN 34.8 (Romijnders et al. 2019, Table 2; ResNet-50)"),
            ("UADA", "DAN 38.2, BN 29.6 (Romijnders et al. 2019, Table 2; ResNet-50)"),
            ("MinEnt", "42.3 (Vu et al., CVPR 2019; DeepLab-v2 ResNet-101)"),
            ("AdvEnt", "43.8 (Vu et al., CVPR 2019; DeepLab-v2 ResNet-101)"),
            ("AdaptSegNet", "41.4 (Tsai et al., CVPR 2018, single level; DeepLab-v2 ResNet-101)"),
            (
                "self-training",
                "52.1 (DACS, Tranheden et al., WACV 2021, with the image mixing uada leaves out; "
                "DeepLab-v2 ResNet-101)",
            ),
        ),
        bound="target oracle (DAN)",
        baseline="source only",
    ),
}


def get_table(key, rows=None):
    """`TABLES[key]`, with only the rows labelled `rows` if given (`Table.select`).

    Raises:
        ValueError: `key` is not a table, or a label is not one of its rows.
    """
    if key not in TABLES:
        raise ValueError(f"`table` must be one of {list(TABLES)}. Received: table={key!r}")
    return TABLES[key] if rows is None else TABLES[key].select(rows)


def table_key(text):
    """The key in `TABLES` of a table named on the command line: `"4"` -> 4, `"methods"`."""
    return int(text) if text.isdigit() else text


def cells_of(experiment):
    """The cells with the paper's numbers that `experiment`'s run fills, in table order.

    Returns:
        `[(table key, row label, column, Cell), ...]`.
    """
    return [
        (key, label, column, cell)
        for key, spec in TABLES.items()
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
