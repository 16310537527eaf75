"""Reproduces a table of the paper: runs (or reuses) its experiments and renders it.

    python -m uada.reproduce --table=1|2|3|4|6|methods|1,2,3,4|all [--demo] [--seeds=0,1,2] \
        [--rows="source only,UADA"] [--dry_run] [--workdir_root=workdirs] \
        [--set=train_steps=1000 --set=data_dir=DIR ...] [--convention=official|original] \
        [--output=table.md] [--experiments_dir=experiments]

Each table (`uada.runs.paper_tables.TABLES`) lists its cells: the experiment file
(`experiments/<name>.flags`) whose run fills the cell, the domain the cell is tested on, and the
paper's number. For each distinct configuration among the cells, one run:

- is reused if one of its workdirs holds a finished run of exactly that configuration (its
  `config.json` equals it and its final evaluation `eval_<resolution>.json` exists);
- is otherwise trained and evaluated with `uada.runs.trainer.train_and_evaluate` (which resumes a
  workdir's checkpoint, e.g. after `--set=train_steps=...` grew the run).

Workdirs are `WORKDIR_ROOT/<experiment name>` (the default of `python -m uada.train`); experiments
with the same configuration (e.g. Table 2's DAN/UADA and Table 4's UADA) share one run. The table
is printed as Markdown in the paper's layout, with the paper's number and the measured one side by
side, and written to `--output` (default `WORKDIR_ROOT/[demo_tables/]table<N>.md`,
`table_methods.md`).

`--table=methods` is not a table of the paper: the adaptation methods (source only, AdaBN, UADA,
MinEnt, AdvEnt, AdaptSegNet, self-training), each with DAN and with BN, tested on the target, and
the target oracle (DAN) as the bound; each method's published GTA5 -> Cityscapes number is beside
it for orientation only (another network and budget). Below it, the room for adaptation (oracle -
source only, DAN) and each method's share of it. `--table=all` is the paper's tables only.

`--demo`: each experiment is mapped to the built-in demo domains and small settings: the flags of
`experiments/demo.flags` (demo_source -> demo_target, unseen demo_unseen, the small backbone,
128x256, 2000 steps) with the experiment's `--mode`, `--norm` and `--lambda_conf`; workdirs
`WORKDIR_ROOT/demo_tables/<mode>_<norm>[_lambda<lambda>]`. GTA5 maps to demo_source, Cityscapes to
demo_target and Mapillary to demo_unseen; the demo has no second unseen domain (ApolloScape's
cells stay empty). Table 3's Cityscapes -> Mapillary column and Table 6 (Cityscapes -> Mapillary)
have no demo analogue: the demo's only labelled training domain pair is demo_source ->
demo_target, and demo_unseen has no training split; those cells stay empty and `--table=6 --demo`
is an error.

`--seeds=0,1,2` runs (or reuses) every cell once per seed, in
`WORKDIR_ROOT/[demo_tables/]seed<N>/<name>`, and renders each cell as mean ± sample standard
deviation with the individual runs; below each table, its comparisons (e.g. UADA - source only)
as differences paired by seed: the mean, its 95% confidence interval, the paired t-test's p-value
(`scipy.stats.ttest_rel`) and Holm's adjusted p-value over the table's comparisons
(`uada.analysis.tables.paired_difference`, `holm`). A raw p < 0.05 is marked **flagged**: a
candidate to re-run on new seeds, not a finding. With `--demo`, a seed also draws other demo
domains (they are generated from the seed). Every table also has the bounds of adaptation: a
source-only row and a target-oracle row (`experiments/gta2cs_target_oracle.flags`: trained on
the target's labels with the same budget).

`--rows="source only,UADA"` (one `--table`) keeps only those rows: only their runs are trained
and only the comparisons between them are reported (and adjusted together), so a confirmation on
new seeds runs just the cells it needs. An unknown label is an error that lists the table's rows.

`--set=name=value` overrides a training flag of every run (validated like `python -m uada.train`'s
flags), e.g. `--set=train_steps=1000` or `--set=data_dir=DIR`.

`--experiments_dir` (default `./experiments`) is the folder of the experiment files, so the
command runs from any directory (e.g. with uada installed as a package:
`--experiments_dir=/path/to/uada/experiments`); relative `--flagfile=experiments/...` lines inside
the files are resolved against that folder's parent, and the process's directory never changes.
A run shared with another table's experiment is found only among the experiment files the folder
has.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app, flags

from uada import command_errors
from uada import flags as uada_flags
from uada.analysis import tables
from uada.runs import paper_tables


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    if fv.table == ["all"]:
        keys = [
            key
            for key, spec in paper_tables.TABLES.items()
            if spec.paper and (spec.demo or not fv.demo)
        ]
    else:
        keys = [paper_tables.table_key(name) for name in fv.table]
    for flag in ("output", "rows"):
        if fv[flag].value and len(keys) > 1:
            raise app.UsageError(
                f"--{flag} takes one --table. Received: --table={','.join(fv.table)}"
            )
    for key in keys:
        try:
            text = tables.reproduce(
                key,
                demo=fv.demo,
                workdir_root=fv.workdir_root,
                overrides=tuple(fv.set),
                dry_run=fv.dry_run,
                convention=fv.convention,
                output=fv.output,
                experiments_dir=fv.experiments_dir,
                seeds=tuple(int(seed) for seed in fv.seeds),
                rows=tuple(fv.rows) or None,
            )
        except command_errors.DATA_ERRORS:
            raise  # what to download, in a few lines (`command_errors.reported` below)
        except (ValueError, FileNotFoundError, flags.Error) as error:  # cannot run: no traceback
            raise app.UsageError(str(error)) from error
        print("\n" + text)


if __name__ == "__main__":
    uada_flags.define_reproduce_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    # One line (a few for a missing dataset), exit status 1 or 128 + signal.
    with command_errors.reported(*command_errors.TRAINING_ERRORS, *command_errors.DATA_ERRORS):
        app.run(main)
