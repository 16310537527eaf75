"""The paper's tables: their cells and numbers, the runs that fill them, and their rendering.

`python -m uada.reproduce` (its docstring says what it does) is the command; this module is its
library. Each table (`TABLES`) lists its cells: the experiment file
(`<experiments_dir>/<name>.flags`) whose run fills the cell, the domain the cell is tested on, and
the paper's number. `TABLES` is the one home of the paper's numbers: each experiment file's header
names its table and row here instead of repeating them. `plan` turns a table into its distinct
runs, `describe` says what would run, `run_all` trains or reuses them and `render` prints the table
with the paper's and the measured numbers side by side.

Beyond the paper, every table carries the bounds of adaptation (a source-only row and the target
oracle, `ORACLE`: trained on the target's labels with the same budget) and its comparisons
(`Table.differences`). With several seeds (`reproduce(..., seeds=...)`) each cell renders as mean
± sample standard deviation with the individual runs, and each comparison as a difference paired
by seed with its standard error, called real only beyond 2 SE (`paired_difference`).

Experiment files are read from an explicit folder (`experiments_dir`, default `./experiments`), so
this works from an installed package and never changes the process's directory: a relative
`--flagfile=experiments/base.flags` line inside an experiment file is resolved against the folder
that holds `experiments_dir` (`uada.flags.expand_flagfiles`), where absl would resolve it against
the current directory.
"""

import dataclasses
import os
import time

import keras
import numpy as np
from absl import flags, logging

from uada import flags as uada_flags
from uada.data import demo as demo_lib
from uada.runs import evaluation, trainer
from uada.runs import workdir as workdir_lib

EXPERIMENTS_DIR = "experiments"  # the default of `--experiments_dir`
DEMO_EXPERIMENT = "demo"  # `--demo` maps each experiment onto experiments/demo.flags
# Beside, not inside, the quick start's workdir `workdirs/demo`.
DEMO_DIR = "demo_tables"
CONVENTIONS = {"official": "miou", "original": "miou_19"}
# Not in the paper: DAN trained source-only on the target's labels, the upper bound of the tables.
ORACLE = "gta2cs_target_oracle"
# Real dataset -> its demo analogue (`--demo`).
DEMO_DOMAINS = {"gta5": "demo_source", "cityscapes": "demo_target", "mapillary": "demo_unseen"}


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


def expected_result(experiment):
    """The "Expected result" of `experiment`'s file header: where its paper numbers are.

    `TABLES` is the one home of the paper's numbers; an experiment file's header names the table
    and row (and the column where the row's cells are different runs) instead of repeating them.
    """
    places = []
    for number, label, column, _ in cells_of(experiment):
        row_cells = dict(TABLES[number].rows)[label]
        same_run = all(cell is not None and cell.experiment == experiment for cell in row_cells)
        place = f"Table {number}, row '{label}'" + ("" if same_run else f", column '{column}'")
        if place not in places:
            places.append(place)
    if not places:
        raise ValueError(f"No table cell is filled by experiment {experiment!r}.")
    return f"the paper's {'; '.join(places)} (% mIoU: `TABLES` in uada/analysis/tables.py)"


# ------------------------------------------------------------------------------------------------
# Experiments -> configs and workdirs


def parse_config(argv, *, experiments_dir=EXPERIMENTS_DIR):
    """The `Config` of training flags `argv` (parsed and validated as `python -m uada.train`).

    Args:
        argv: training flags; a `--flagfile=PATH` is read from PATH (relative to the current
            directory), and relative `--flagfile=` lines inside flagfiles are resolved against the
            folder holding `experiments_dir` (see the module docstring).
        experiments_dir: the folder of the experiment files.

    Raises:
        flags.Error: a flag is unknown or has an invalid value (the message names it), or a
            flagfile cannot be read.
    """
    root = os.path.dirname(os.path.abspath(experiments_dir))
    flag_values = flags.FlagValues()
    uada_flags.define_train_flags(flag_values)
    # absl's errors name the flag and echo the value.
    flag_values(["uada.train", *uada_flags.expand_flagfiles(argv, root)])
    return uada_flags.train_config(flag_values)


def experiment_argv(experiment, *, demo=False, overrides=(), experiments_dir=EXPERIMENTS_DIR):
    """The training flags of `experiment` (a name in `experiments_dir`), or of its demo analogue.

    Args:
        experiment: an experiment file's name without `.flags`.
        demo: map it to `demo.flags` with the experiment's mode, norm and lambda.
        overrides: extra `name=value` training flags.
        experiments_dir: the folder of the experiment files.
    """
    path = os.path.join(experiments_dir, f"{experiment}.flags")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Experiment file {path} not found (see --experiments_dir). Received: {experiment!r}"
        )
    argv = [f"--flagfile={path}"]
    if demo:
        config = parse_config(argv, experiments_dir=experiments_dir)
        argv = [
            f"--flagfile={os.path.join(experiments_dir, DEMO_EXPERIMENT + '.flags')}",
            f"--mode={config.mode}",
            f"--norm={config.norm}",
            f"--lambda_conf={config.lambda_conf:g}",
        ]
        if config.source != "gta5":  # the target oracle: trained on the target's labels
            argv += [
                f"--source={DEMO_DOMAINS[config.source]}",
                f"--target={DEMO_DOMAINS[config.target]}",
            ]
    return argv + [f"--{item}" for item in overrides]


def _demo_workdir_name(config):
    """`<mode>_<norm>[_lambda<lambda>]`, `oracle_<norm>` for a run trained on the demo target,
    then `_shift-<name>` for a demo shift other than `full` and `_weights-<file stem>` for a
    pretrained start."""
    if config.source == "demo_target":
        name = f"oracle_{config.norm}"
    else:
        name = f"{config.mode}_{config.norm}"
        if config.mode == "uada":
            name += f"_lambda{config.lambda_conf:g}"
    shift = demo_lib.shift_name(config.demo_shift)
    if shift != "full":
        name += f"_shift-{shift}"
    if config.weights != "none":
        stem = os.path.basename(config.weights).split(".")[0]
        name += f"_weights-{stem}"
    return name


@dataclasses.dataclass(eq=False)  # compared and hashed by identity: one object per run
class Run:
    """One distinct configuration of a table, and the workdirs that may hold it."""

    config: object
    argv: list
    workdirs: list  # candidates; the first is where a new run is trained
    experiments: list
    adabn: bool = False  # a cell also needs its AdaBN evaluation

    def finished_workdir(self):
        """A candidate workdir holding this exact finished run, or None."""
        for workdir in self.workdirs:
            if is_finished(workdir, self.config):
                return workdir
        return None


def is_finished(workdir, config):
    """Whether `workdir` holds a run of exactly `config` with its final evaluation JSON."""
    if not os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
        return False
    if workdir_lib.load_config(workdir) != config:
        return False
    return os.path.isfile(_eval_json(workdir, config))


def _eval_json(workdir, config, suffix=""):
    return evaluation.results_path(
        workdir, config, config.eval_resolution, f"eval_{{}}{suffix}.json"
    )


def plan(table, *, demo=False, workdir_root="workdirs", overrides=(),
         experiments_dir=EXPERIMENTS_DIR, seed=None):  # fmt: skip
    """The runs of `table` (a number in `TABLES`): `{experiment name: Run}` (shared runs repeat).

    The experiment files are read from `experiments_dir`. With `seed`, every run gets
    `--seed=<seed>` and its workdir is in a `seed<seed>` folder
    (`WORKDIR_ROOT/[demo_tables/]seed<seed>/<name>`).

    Raises:
        ValueError: `table` is unknown, or has no demo analogue with `demo`.
    """
    if table not in TABLES:
        raise ValueError(f"`table` must be one of {sorted(TABLES)}. Received: table={table!r}")
    spec = TABLES[table]
    if demo and not spec.demo:
        raise ValueError(
            f"Table {table} (Cityscapes -> Mapillary) has no demo analogue: the demo's only "
            "labelled/unlabelled training pair is demo_source -> demo_target, and demo_unseen "
            "has no training split. Run it on the real datasets (without --demo)."
        )

    if seed is not None:
        overrides = (*overrides, f"seed={int(seed)}")
        workdir_root = os.path.join(workdir_root, DEMO_DIR if demo else "", f"seed{int(seed)}")

    def parse(experiment, demo):
        argv = experiment_argv(experiment, demo=demo, overrides=overrides,
                               experiments_dir=experiments_dir)  # fmt: skip
        return argv, parse_config(argv, experiments_dir=experiments_dir)

    by_config = {}
    runs = {}
    for _, cells in spec.rows:
        for cell in cells:
            if cell is None or cell.experiment is None or cell.experiment in runs:
                continue
            if demo and cell.experiment.startswith("table3_cityscapes_mapillary"):
                continue  # no demo analogue (see `uada.reproduce`)
            argv, config = parse(cell.experiment, demo=demo)
            if demo:
                folder = workdir_root if seed is not None else os.path.join(workdir_root, DEMO_DIR)
                workdir = os.path.join(folder, _demo_workdir_name(config))
            else:
                workdir = os.path.join(workdir_root, cell.experiment)
            run = by_config.get(config)
            if run is None:
                run = by_config[config] = Run(config, argv, [workdir], [])
                if not demo:  # a finished run of another table's experiment serves too
                    run.workdirs += [
                        os.path.join(workdir_root, other)
                        for other in _all_experiments()
                        if other != cell.experiment and parse(other, demo=False)[1] == config
                    ]
            elif workdir not in run.workdirs:
                run.workdirs.append(workdir)
            run.experiments.append(cell.experiment)
            runs[cell.experiment] = run
    for _, cells in spec.rows:
        for cell in cells:
            if cell is not None and cell.statistics == "target" and cell.experiment in runs:
                runs[cell.experiment].adabn = True
    return runs


def _all_experiments():
    """Every experiment named in `TABLES`, in table order."""
    names = [
        cell.experiment
        for spec in TABLES.values()
        for _, cells in spec.rows
        for cell in cells
        if cell is not None and cell.experiment is not None
    ]
    return list(dict.fromkeys(names))


def describe(runs):
    """Lines saying, per distinct run, what `reproduce` would do and the equivalent command."""
    lines = []
    for run in dict.fromkeys(runs.values(), None):
        finished = run.finished_workdir()
        workdir = finished or run.workdirs[0]
        if finished:
            action = "reuse"
        elif os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
            action = "resume"
        else:
            action = "train"
        lines.append(
            f"{action:6s} {workdir}  ({', '.join(run.experiments)})\n"
            f"       python -m uada.train {' '.join(run.argv)} --workdir={workdir}"
        )
        if run.adabn:
            lines.append(
                f"       python -m uada.evaluate --workdir={workdir} --adapt_statistics=target"
            )
    return lines


# ------------------------------------------------------------------------------------------------
# Running and rendering


def run_all(runs):
    """Trains what is not finished; returns `{cell key: (config, evaluation results)}`.

    The key is the experiment (the run's final evaluation) and, for runs whose AdaBN evaluation
    a cell needs, also `<experiment>+adabn`: `eval_<resolution>_adabn.json`, computed on the
    run's target domain with `uada.runs.evaluation.evaluate(..., adapt_statistics="target")`
    unless the workdir holds it.
    """
    import json

    done = {}
    for run in dict.fromkeys(runs.values(), None):
        workdir = run.finished_workdir()
        start, trained = time.monotonic(), workdir is None
        if trained:
            workdir = run.workdirs[0]
            logging.debug("Training %s (%s).", workdir, ", ".join(run.experiments))
            keras.utils.clear_session()
            trainer.train_and_evaluate(run.config, workdir, verbose=False)
        with open(_eval_json(workdir, run.config)) as f:
            results = json.load(f)
        logging.info(  # one line per run
            "%s (%s): %s; mIoU (%%) %s", workdir, ", ".join(run.experiments),
            f"trained in {time.monotonic() - start:.0f} s" if trained else "reused",
            ", ".join(f"{domain} {_percent(result['miou'])}" for domain, result in results.items()),
        )  # fmt: skip
        for experiment in run.experiments:
            done[experiment] = (run.config, results)
        if run.adabn:
            path = _eval_json(workdir, run.config, "_adabn")
            if not os.path.isfile(path):
                logging.info("AdaBN evaluation of %s.", workdir)
                evaluation.evaluate(
                    run.config, workdir, [run.config.target], adapt_statistics="target",
                    print_table=False,
                )  # fmt: skip
            with open(path) as f:
                adapted = json.load(f)
            for experiment in run.experiments:
                done[f"{experiment}+adabn"] = (run.config, adapted)
    return done


def _percent(fraction):
    return "-" if fraction is None else f"{100 * fraction:.1f}"


def _domain(config, role):
    if role == "source":
        return config.source
    if role == "target":
        return config.target
    index = int(role.split(":")[1])
    return config.unseen[index] if index < len(config.unseen) else None


def _by_seed(entry):
    """A `measured` entry as `{seed: (config, results)}` (a single run is seed `None`)."""
    return entry if isinstance(entry, dict) else {None: entry}


def _cell_values(cell, measured, key):
    """`({seed: % mIoU}, tested-on domains)` of a cell (empty where nothing was measured)."""
    values, domains = {}, set()
    if cell is None or cell.key not in measured:
        return values, domains
    for seed, (config, results) in _by_seed(measured[cell.key]).items():
        domain = _domain(config, cell.role)
        if domain is None:
            continue
        domains.add(domain)
        result = results.get(domain)
        if result is not None and result.get(key) is not None:
            values[seed] = 100 * result[key]
    return values, domains


def summarize(values):
    """`(mean, sample standard deviation)` of a list of numbers (std `nan` for one number)."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), std


def paired_difference(a, b):
    """The difference `a - b` of two cells measured with the same seeds, and its significance.

    Runs with the same seed share the demo domains' draw (generated from the seed), the
    initialization and the data order, so the test pairs them: `d_i = a_i - b_i` over the seeds
    both cells have, mean `d`, standard error `SE = std(d, ddof=1) / sqrt(n)`. The difference is
    called real when `|mean| > 2 SE` (about a 95% interval under a normal approximation; with 3
    seeds a t-test would need 4.3 SE, so `2 SE` is the issue's stated, lenient, threshold).

    Args:
        a, b: `{seed: value}`.

    Returns:
        `(mean, SE, n, real)`; SE is `nan` and real `False` with fewer than two common seeds.
    """
    seeds = [seed for seed in a if seed in b]
    d = np.asarray([a[seed] - b[seed] for seed in seeds], dtype=np.float64)
    if len(d) == 0:
        return float("nan"), float("nan"), 0, False
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), len(d), False
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    return mean, se, len(d), abs(mean) > 2 * se


def _format_values(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{next(iter(values.values())):.1f}"
    mean, std = summarize(list(values.values()))
    runs = ", ".join(f"{v:.1f}" for v in values.values())
    return f"{mean:.1f} ± {std:.1f} ({runs})"


def render(table, measured, *, convention="official", demo=False):
    """The Markdown table of `table` with the paper's and the measured numbers side by side.

    A cell measured with several seeds shows `mean ± sample standard deviation (run, run, ...)`.
    Below the table, each of the table's `differences` (`a - b`, paired by seed:
    `paired_difference`) with its standard error and whether it is real (`|mean| > 2 SE`).

    Args:
        table: a number in `TABLES`.
        measured: `{cell key: (config, results)}` as `run_all` returns, or
            `{cell key: {seed: (config, results)}}` for several seeds (missing cells render
            as `-`).
        convention: `"official"` (`miou`) or `"original"` (`miou_19`).
        demo: note that the measured numbers come from the demo domains.
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"`convention` must be one of {list(CONVENTIONS)}. Received: convention={convention!r}"
        )
    spec = TABLES[table]
    key = CONVENTIONS[convention]
    header = [spec.row_header]
    for column in spec.columns:
        header += [f"{column} paper", f"{column} measured"]
    lines = [
        f"{spec.title}" + (" — measured on the demo domains" if demo else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    tested_on = {}
    cell_values = {}
    seeds = set()
    for label, cells in spec.rows:
        row = [label]
        for column, cell in zip(spec.columns, cells, strict=True):
            paper = "-" if cell is None or cell.paper is None else f"{cell.paper:.1f}"
            values, domains = _cell_values(cell, measured, key)
            if domains:
                tested_on.setdefault(column, set()).update(domains)
            cell_values[label, column] = values
            seeds.update(values)
            row += [paper, _format_values(values)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    mapping = ", ".join(f"{c}: {'/'.join(sorted(d))}" for c, d in tested_on.items())
    lines.append(
        f"mIoU convention: {convention} ({key}); measured columns tested on {mapping or '-'}."
    )
    differences = _render_differences(spec, cell_values)
    if differences:
        several = len(seeds) > 1
        lines += [
            "",
            "Differences (a - b, % mIoU"
            + (
                f"; paired by seed over {len(seeds)} seeds: mean ± standard error; real when "
                "|mean| > 2 SE):"
                if several
                else "; one run each, no error bar):"
            ),
            "",
        ]
        lines += differences
    return "\n".join(lines) + "\n"


def _render_differences(spec, cell_values):
    """One line per difference of `spec` that has numbers on both sides."""
    pairs = []
    for a, b in spec.differences:
        if isinstance(a, str):  # two rows, column by column
            pairs += [((a, column), (b, column)) for column in spec.columns]
        else:
            pairs.append((a, b))
    lines = []
    for a, b in pairs:
        if not cell_values.get(a) or not cell_values.get(b):
            continue
        mean, se, n, real = paired_difference(cell_values[a], cell_values[b])
        if a[0] == b[0]:  # one row, two columns: "none: UADA - source only"
            what = f"- {a[0]}: {a[1]} - {b[1]}"
        elif a[1] == b[1]:  # two rows, one column: "UADA - source only (Cityscapes)"
            what = f"- {a[0]} - {b[0]} ({a[1]})"
        else:
            what = f"- {a[0]} ({a[1]}) - {b[0]} ({b[1]})"
        if n >= 2:
            verdict = "**real**" if real else "within noise"
            lines.append(f"{what}: {mean:+.1f} ± {se:.1f} (n={n}): {verdict}")
        elif n == 1:
            lines.append(f"{what}: {mean:+.1f}")
    return lines


def reproduce(table, *, demo=False, workdir_root="workdirs", overrides=(), dry_run=False,
              convention="official", output=None, experiments_dir=EXPERIMENTS_DIR,
              seeds=()):  # fmt: skip
    """Runs or reuses the runs of `table`, then renders and writes it (`python -m uada.reproduce`).

    Args:
        seeds: run every cell once per seed (`plan(..., seed=seed)`) and render mean ± standard
            deviation with the individual runs; empty: one run per cell with the experiments'
            own seed.

    Returns:
        The rendered Markdown table, or with `dry_run` the plan (nothing is trained).
    """
    plans = {
        seed: plan(
            table,
            demo=demo,
            workdir_root=workdir_root,
            overrides=overrides,
            experiments_dir=experiments_dir,
            seed=seed,
        )  # fmt: skip
        for seed in (seeds or (None,))
    }
    lines = [line for runs in plans.values() for line in describe(runs)]
    if dry_run:
        return "\n".join(lines) + "\n"
    measured = {}
    for seed, runs in plans.items():
        for key, entry in run_all(runs).items():
            measured.setdefault(key, {})[seed] = entry
    text = render(table, measured, convention=convention, demo=demo)
    output = output or os.path.join(workdir_root, DEMO_DIR if demo else "", f"table{table}.md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text + "\nRuns:\n\n" + "\n".join(f"    {line}" for line in lines) + "\n")
    return text
