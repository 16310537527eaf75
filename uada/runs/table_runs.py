"""The runs of a paper table: planned from the experiment files, trained or reused.

`python -m uada.reproduce` (its docstring says what it does) is the command. `plan` turns a table
of `uada.runs.paper_tables.TABLES` into its distinct runs, `describe` says what would run and
`run_all` trains or reuses them; `uada.analysis.tables` renders the results.

Experiment files are read from an explicit folder (`experiments_dir`, default `./experiments`), so
this works from an installed package and never changes the process's directory: a relative
`--flagfile=experiments/base.flags` line inside an experiment file is resolved against the folder
that holds `experiments_dir` (`uada.config_flags.expand_flagfiles`), where absl would resolve it
against the current directory.
"""

import dataclasses
import json
import os
import time

import keras
from absl import flags, logging

from uada import config_flags, methods
from uada.data import demo_generator
from uada.runs import evaluation, trainer
from uada.runs import workdir as workdir_lib
from uada.runs.paper_tables import all_experiments, get_table

EXPERIMENTS_DIR = "experiments"  # the default of `--experiments_dir`
DEMO_EXPERIMENT = "demo"  # `--demo` maps each experiment onto experiments/demo.flags
# Beside, not inside, the quick start's workdir `workdirs/demo`.
DEMO_DIR = "demo_tables"
# Real dataset -> its demo analogue (`--demo`).
DEMO_DOMAINS = {"gta5": "demo_source", "cityscapes": "demo_target", "mapillary": "demo_unseen"}


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
    config_flags.define_train_flags(flag_values)
    # absl's errors name the flag and echo the value.
    flag_values(["uada.train", *config_flags.expand_flagfiles(argv, root)])
    return config_flags.train_config(flag_values)


def experiment_argv(experiment, *, demo=False, overrides=(), experiments_dir=EXPERIMENTS_DIR):
    """The training flags of `experiment` (a name in `experiments_dir`), or of its demo analogue.

    Args:
        experiment: an experiment file's name without `.flags`.
        demo: map it to `demo.flags` with the experiment's mode, norm, lambda and, for a method
            of `uada.methods`, its hyperparameters.
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
            # The experiment's method hyperparameters (`uada.methods`), if its mode has any.
            *(f"--{name}={value!r}" for name, value in methods.hyperparameters(config).items()),
        ]
        if config.source != "gta5":  # the target oracle: trained on the target's labels
            argv += [
                f"--source={DEMO_DOMAINS[config.source]}",
                f"--target={DEMO_DOMAINS[config.target]}",
            ]
    return argv + [f"--{item}" for item in overrides]


def _demo_workdir_name(config):
    """`<mode>_<norm>[_lambda<lambda>]` (lambda for `uada` only: a method of `uada.methods` is
    `<mode>_<norm>`), `oracle_<norm>` for a run trained on the demo target,
    then `_shift-<name>` for a demo shift other than `full` and `_weights-<file stem>` for a
    pretrained start."""
    if config.source == "demo_target":
        name = f"oracle_{config.norm}"
    else:
        name = f"{config.mode}_{config.norm}"
        if config.mode == "uada":
            name += f"_lambda{config.lambda_conf:g}"
    shift = demo_generator.shift_name(config.demo_shift)
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
         experiments_dir=EXPERIMENTS_DIR, seed=None, rows=None):  # fmt: skip
    """The runs of `table` (a key in `TABLES`): `{experiment name: Run}` (shared runs repeat).

    The experiment files are read from `experiments_dir`. With `seed`, every run gets
    `--seed=<seed>` and its workdir is in a `seed<seed>` folder
    (`WORKDIR_ROOT/[demo_tables/]seed<seed>/<name>`). With `rows`, only the runs of those row
    labels (`Table.select`).

    Raises:
        ValueError: `table` is unknown, a label of `rows` is not one of its rows, or the table
            has no demo analogue with `demo`.
    """
    spec = get_table(table, rows)
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
                        for other in all_experiments()
                        if other != cell.experiment
                        # a partial experiments folder serves the tables it has files for
                        and os.path.isfile(os.path.join(experiments_dir, f"{other}.flags"))
                        and parse(other, demo=False)[1] == config
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
