"""Reproduces a table of the paper: runs (or reuses) its experiments and renders it.

    python -m uada.reproduce --table=1|2|3|4|6 [--demo] [--dry_run] [--workdir_root=workdirs] \
        [--set=train_steps=1000 --set=data_dir=DIR ...] [--convention=official|original] \
        [--output=table.md]

Each table (`TABLES`) lists its cells: the experiment file (`experiments/<name>.flags`) whose run
fills the cell, the domain the cell is tested on, and the paper's number. For each
distinct configuration among the cells, one run:

- is reused if one of its workdirs holds a finished run of exactly that configuration (its
  `config.json` equals it and its final evaluation `eval_<resolution>.json` exists);
- is otherwise trained and evaluated with `uada.runs.trainer.train_and_evaluate` (which resumes a
  workdir's checkpoint, e.g. after `--set=train_steps=...` grew the run).

Workdirs are `WORKDIR_ROOT/<experiment name>` (the default of `python -m uada.train`); experiments
with the same configuration (e.g. Table 2's DAN/UADA and Table 4's UADA) share one run. The table
is printed as Markdown in the paper's layout, with the paper's number and the measured one side by
side, and written to `--output` (default `WORKDIR_ROOT/[demo_tables/]table<N>.md`).

`--demo`: each experiment is mapped to the built-in demo domains and small settings: the flags of
`experiments/demo.flags` (demo_source -> demo_target, unseen demo_unseen, the small backbone,
128x256, 2000 steps) with the experiment's `--mode`, `--norm` and `--lambda_conf`; workdirs
`WORKDIR_ROOT/demo_tables/<mode>_<norm>[_lambda<lambda>]`. GTA5 maps to demo_source, Cityscapes to
demo_target and Mapillary to demo_unseen; the demo has no second unseen domain (ApolloScape's
cells stay empty). Table 3's Cityscapes -> Mapillary column and Table 6 (Cityscapes -> Mapillary)
have no demo analogue: the demo's only labelled training domain pair is demo_source ->
demo_target, and demo_unseen has no training split; those cells stay empty and `--table=6 --demo`
is an error.

`--set=name=value` overrides a training flag of every run (validated like `python -m uada.train`'s
flags), e.g. `--set=train_steps=1000` or `--set=data_dir=DIR`.
"""

import contextlib
import dataclasses
import os
import pathlib

import keras
from absl import app, flags, logging

from uada import command_errors
from uada import flags as uada_flags
from uada.runs import trainer
from uada.runs import workdir as workdir_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMO_FLAGFILE = "experiments/demo.flags"
# Beside, not inside, the quick start's workdir `workdirs/demo`.
DEMO_DIR = "demo_tables"
CONVENTIONS = {"official": "miou", "original": "miou_19"}


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
    """A table of the paper: its rows of cells, in the paper's layout and numbering."""

    number: int
    title: str
    row_header: str
    columns: tuple
    rows: tuple  # ((row label, (Cell or None per column)), ...)
    demo: bool = True  # whether `--demo` can reproduce it


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
        ),
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


# ------------------------------------------------------------------------------------------------
# Experiments -> configs and workdirs


@contextlib.contextmanager
def _in_repo():
    # Experiment files include experiments/base.flags by a path relative to the repository root.
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        yield
    finally:
        os.chdir(previous)


def parse_config(argv):
    """The `Config` of training flags `argv` (parsed and validated as `python -m uada.train`).

    Raises:
        flags.Error: a flag is unknown or has an invalid value (the message names it).
    """
    flag_values = flags.FlagValues()
    uada_flags.define_train_flags(flag_values)
    with _in_repo():
        flag_values(["uada.train", *argv])  # absl's errors name the flag and echo the value
    return uada_flags.train_config(flag_values)


def experiment_argv(experiment, *, demo=False, overrides=()):
    """The training flags of `experiment` (a name in `experiments/`), or of its demo analogue.

    Args:
        experiment: an experiment file's name without `.flags`.
        demo: map it to `experiments/demo.flags` with the experiment's mode, norm and lambda.
        overrides: extra `name=value` training flags.
    """
    path = REPO / "experiments" / f"{experiment}.flags"
    if not path.is_file():
        raise FileNotFoundError(f"Experiment file {path} not found. Received: {experiment!r}")
    argv = [f"--flagfile=experiments/{experiment}.flags"]
    if demo:
        config = parse_config(argv)
        argv = [
            f"--flagfile={DEMO_FLAGFILE}",
            f"--mode={config.mode}",
            f"--norm={config.norm}",
            f"--lambda_conf={config.lambda_conf:g}",
        ]
    return argv + [f"--{item}" for item in overrides]


def _demo_workdir_name(config):
    name = f"{config.mode}_{config.norm}"
    return f"{name}_lambda{config.lambda_conf:g}" if config.mode == "uada" else name


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
    return os.path.join(workdir, f"eval_{config.eval_resolution}{suffix}.json")


def plan(table, *, demo=False, workdir_root="workdirs", overrides=()):
    """The runs of `table` (a number in `TABLES`): `{experiment name: Run}` (shared runs repeat).

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
    by_config = {}
    runs = {}
    for _, cells in spec.rows:
        for cell in cells:
            if cell is None or cell.experiment is None or cell.experiment in runs:
                continue
            if demo and cell.experiment.startswith("table3_cityscapes_mapillary"):
                continue  # no demo analogue (see the module docstring)
            argv = experiment_argv(cell.experiment, demo=demo, overrides=overrides)
            config = parse_config(argv)
            if demo:
                workdir = os.path.join(workdir_root, DEMO_DIR, _demo_workdir_name(config))
            else:
                workdir = os.path.join(workdir_root, cell.experiment)
            run = by_config.get(config)
            if run is None:
                run = by_config[config] = Run(config, argv, [workdir], [])
                if not demo:  # a finished run of another table's experiment serves too
                    run.workdirs += [
                        os.path.join(workdir_root, other)
                        for other in _all_experiments()
                        if other != cell.experiment
                        and parse_config(experiment_argv(other, overrides=overrides)) == config
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

    from uada.runs import evaluation

    done = {}
    for run in dict.fromkeys(runs.values(), None):
        workdir = run.finished_workdir()
        if workdir is None:
            workdir = run.workdirs[0]
            logging.info("Training %s (%s).", workdir, ", ".join(run.experiments))
            keras.utils.clear_session()
            trainer.train_and_evaluate(run.config, workdir)
        else:
            logging.info("Reusing %s.", workdir)
        with open(_eval_json(workdir, run.config)) as f:
            results = json.load(f)
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


def _domain(config, role):
    if role == "source":
        return config.source
    if role == "target":
        return config.target
    index = int(role.split(":")[1])
    return config.unseen[index] if index < len(config.unseen) else None


def render(table, measured, *, convention="official", demo=False):
    """The Markdown table of `table` with the paper's and the measured numbers side by side.

    Args:
        table: a number in `TABLES`.
        measured: `{cell key: (config, results)}` as `run_all` returns (missing cells render
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
    for label, cells in spec.rows:
        row = [label]
        for column, cell in zip(spec.columns, cells, strict=True):
            paper = "-" if cell is None or cell.paper is None else f"{cell.paper:.1f}"
            value = "-"
            if cell is not None and cell.key in measured:
                config, results = measured[cell.key]
                domain = _domain(config, cell.role)
                if domain is not None:
                    tested_on.setdefault(column, set()).add(domain)
                result = results.get(domain) if domain else None
                if result is not None and result.get(key) is not None:
                    value = f"{100 * result[key]:.1f}"
            row += [paper, value]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    mapping = ", ".join(f"{c}: {'/'.join(sorted(d))}" for c, d in tested_on.items())
    lines.append(
        f"mIoU convention: {convention} ({key}); measured columns tested on {mapping or '-'}."
    )
    return "\n".join(lines) + "\n"


def reproduce(table, *, demo=False, workdir_root="workdirs", overrides=(), dry_run=False,
              convention="official", output=None):  # fmt: skip
    """Runs or reuses the runs of `table`, then renders and writes it.

    Returns:
        The rendered Markdown table, or with `dry_run` the plan (nothing is trained).
    """
    runs = plan(table, demo=demo, workdir_root=workdir_root, overrides=overrides)
    lines = describe(runs)
    if dry_run:
        return "\n".join(lines) + "\n"
    text = render(table, run_all(runs), convention=convention, demo=demo)
    output = output or os.path.join(workdir_root, DEMO_DIR if demo else "", f"table{table}.md")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text + "\nRuns:\n\n" + "\n".join(f"    {line}" for line in lines) + "\n")
    return text


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.reproduce`."""
    fv = flag_values
    flags.DEFINE_enum("table", None, [str(t) for t in TABLES], "The paper's table.", flag_values=fv)
    flags.mark_flag_as_required("table", flag_values=fv)
    flags.DEFINE_boolean(
        "demo", False, "Map the experiments to the demo domains and settings.", flag_values=fv
    )
    flags.DEFINE_boolean("dry_run", False, "Print what would run; run nothing.", flag_values=fv)
    flags.DEFINE_string("workdir_root", "workdirs", "Folder of the runs' workdirs.", flag_values=fv)
    flags.DEFINE_multi_string(
        "set", [], "Training flag override for every run, name=value (repeatable).", flag_values=fv
    )
    flags.register_validator(
        "set",
        lambda value: all("=" in item and not item.startswith("-") for item in value),
        message="--set must be name=value without dashes, e.g. --set=train_steps=1000.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "convention", "official", list(CONVENTIONS), "mIoU convention.", flag_values=fv
    )
    flags.DEFINE_string(
        "output",
        None,
        "Markdown file; default WORKDIR_ROOT/[demo_tables/]table<N>.md.",
        flag_values=fv,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    try:
        text = reproduce(
            int(fv.table),
            demo=fv.demo,
            workdir_root=fv.workdir_root,
            overrides=tuple(fv.set),
            dry_run=fv.dry_run,
            convention=fv.convention,
            output=fv.output,
        )
    except (ValueError, flags.Error) as error:  # a table or flags that cannot run: no traceback
        raise app.UsageError(str(error)) from error
    print("\n" + text)


if __name__ == "__main__":
    define_flags()
    with command_errors.reported(*command_errors.TRAINING_ERRORS):  # one line, 1 or 128 + signal
        app.run(main)
