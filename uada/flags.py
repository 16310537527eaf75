"""Every command-line flag of uada, in one module.

Each command defines only the flags it takes:

- `define_train_flags()`: `python -m uada.train` — one flag per `uada.config.Config` field,
  generated from the field (`define_config_flag`: same name, default, description; the closed set
  of names of its metadata's `enum` (`uada.names`); its bounds), plus `--workdir`; cross-flag
  rules are validators, so a bad value or combination stops the command before anything runs,
  with a message naming the flag(s) and echoing the value. `uada.config_flags` defines them beside
  the `Config` (run planning turns experiment files into configs with them); this module lists
  them, with `train_config` and `expand_flagfiles`, among every command's flags.
- `define_evaluate_flags()`, `define_predict_flags()`, `define_export_flags()`: the commands
  that read the run's config from its workdir.
- `define_retrieval_flags()`, `define_predict_grid_flags()`, `define_selection_flags()`,
  `define_diagnostics_flags()`, `define_reproduce_flags()`: the analysis commands;
  `define_inspect_dataset_flags()`: `python -m uada.inspect_dataset`;
  `define_demo_flags()`: `python -m uada.demo`; `define_pretrain_flags()`:
  `python -m uada.pretrain`.

`train_config()` turns parsed training flags into the frozen `Config`. Library modules never read
`FLAGS`; only the thin `main`s of the commands do, through this module.

Experiment files (`experiments/*.flags`) are absl flagfiles: one `--name=value` per line, comments
on their own lines (absl keeps the rest of a flag line as the value), and a first line
`--flagfile=experiments/base.flags` that they override (paths are relative to the directory the
command runs in: the repository root). `python -m uada.reproduce` reads them from any directory:
`expand_flagfiles` resolves such lines against the folder holding `--experiments_dir` instead.
"""

import dataclasses
import os

from absl import flags

from uada import config as config_lib
from uada import config_flags
from uada.analysis import checkpoint_selection, tables
from uada.config_flags import expand_flagfiles, register_names_validator, train_config
from uada.models.adabn import ADAPT_STATISTICS
from uada.runs import checkpoint_average, paper_tables, table_runs
from uada.runs import workdir as workdir_lib

__all__ = [
    "default_workdir", "define_demo_flags", "define_diagnostics_flags",
    "define_evaluate_flags", "define_export_flags", "define_inspect_dataset_flags",
    "define_predict_flags",
    "define_predict_grid_flags", "define_pretrain_flags", "define_reproduce_flags",
    "define_retrieval_flags", "define_selection_flags", "define_train_flags", "expand_flagfiles",
    "train_config",
]  # fmt: skip

_CONFIG_FIELDS = {field.name: field for field in dataclasses.fields(config_lib.Config)}


def define_train_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.train` (`uada.config_flags.define_train_flags`)."""
    config_flags.define_train_flags(flag_values, module_name=__name__)


def default_workdir(argv):
    """`workdirs/<name>` for the last `--flagfile=.../<name>.flags` of a command line, else None."""
    flagfiles = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--flagfile=")]
    if not flagfiles:
        return None
    return os.path.join("workdirs", os.path.splitext(os.path.basename(flagfiles[-1]))[0])


def _define_workdir(fv):
    flags.DEFINE_string("workdir", None, "Directory of a training run.", flag_values=fv)
    flags.mark_flag_as_required("workdir", flag_values=fv)
    flags.DEFINE_string(
        "checkpoint",
        None,
        "Checkpoint to use (a prefix such as DIR/checkpoints/ckpt-100); default: the latest.",
        flag_values=fv,
    )
    flags.register_validator(
        "workdir",
        lambda value: value is None or os.path.isdir(value),
        message="--workdir must be an existing run directory.",
        flag_values=fv,
    )


def define_evaluate_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.evaluate`."""
    fv = flag_values
    _define_workdir(fv)
    flags.DEFINE_list(
        "domains",
        None,
        "Comma-separated domains to evaluate (built-in names or folder datasets); default: the "
        "run's source, target and unseen.",
        flag_values=fv,
    )
    config_flags.register_domains_validator("domains", fv)
    config_flags.define_config_flag(
        _CONFIG_FIELDS["eval_resolution"], name="resolution", default=None, flag_values=fv,
        module_name=__name__,
    )  # fmt: skip
    flags.DEFINE_integer(
        "max_images", None,
        "Images per domain, the split's first N files (sorted); default: the run's "
        "--eval_max_images.",
        lower_bound=0, flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string(
        "output_json", None, "Where to write the JSON results; default: WORKDIR/eval_<...>.json.",
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string(
        "checkpoints", "latest",
        "'latest': evaluate the latest checkpoint (or --checkpoint). 'all': evaluate every kept "
        "checkpoint (train with --keep_checkpoints=0 to keep all), reusing finished evaluations, "
        "and write WORKDIR/eval_curve.csv and .png with the label-free selection signals. "
        "'last:K' with --average: the mean over the last K checkpoints (the original's: 3), "
        "written to WORKDIR/eval_<resolution>_lastK.json.",
        flag_values=fv,
    )  # fmt: skip
    flags.register_validator(
        "checkpoints",
        lambda value: value in ("latest", "all") or checkpoint_average.parse_last(value),
        message="--checkpoints must be 'latest', 'all' or 'last:K' with K a positive integer.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "average", False,
        "With --checkpoints=last:K: report the mean of the K checkpoints' results (each mIoU "
        "and class IoU averaged), as the original did.", flag_values=fv,
    )  # fmt: skip
    flags.register_multi_flags_validator(
        ["checkpoints", "average"],
        lambda values: (
            values["average"] == bool(checkpoint_average.parse_last(values["checkpoints"]))
        ),
        message="--average and --checkpoints=last:K go together (the mean of the last K).",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "select", "last", checkpoint_selection.SELECTIONS,
        "With --checkpoints=all, the checkpoint to report, chosen without target labels: 'last', "
        "or the best by a signal: domain_accuracy (closest to 0.5; UADA runs only), "
        "target_entropy (lowest) or retrieval_alignment (highest).", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_enum(
        "adapt_statistics", "none", ADAPT_STATISTICS,
        "'none': the model's own normalization statistics. 'target' (AdaBN): before each "
        "domain, recompute every normalization layer's statistics on that domain's unlabelled "
        "training images (the evaluated split's where it has none); results go to "
        "WORKDIR/eval_<resolution>_adabn.json.", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "adapt_max_images", 0, "Images for AdaBN's statistics (the first ones); 0 for all.",
        lower_bound=0, flag_values=fv,
    )  # fmt: skip
    flags.register_multi_flags_validator(
        ["checkpoints", "select"],
        lambda values: values["checkpoints"] == "all" or values["select"] == "last",
        message="--select chooses among every checkpoint: it needs --checkpoints=all.",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["checkpoints", "checkpoint", "output_json"],
        lambda values: (
            values["checkpoints"] == "latest"
            or (values["checkpoint"] is None and values["output_json"] is None)
        ),
        message="--checkpoints=all and last:K evaluate several checkpoints and name their own "
        "outputs: they take neither --checkpoint nor --output_json.",
        flag_values=fv,
    )


def define_predict_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.predict`."""
    fv = flag_values
    _define_workdir(fv)
    flags.DEFINE_list(
        "input", None, "Image files and/or folders (comma-separated).", flag_values=fv
    )
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.mark_flags_as_required(["input", "output"], flag_values=fv)
    flags.register_validator(
        "input",
        lambda value: value is None or all(os.path.exists(path) for path in value),
        message="--input must name existing image files or folders.",
        flag_values=fv,
    )
    from uada.data import labels  # the default lives with `labels.overlay`

    flags.DEFINE_float(
        "overlay_alpha",
        labels.OVERLAY_ALPHA,
        "Weight of the palette colours in the overlays (`<stem>_overlay.png`): "
        "alpha * colour + (1 - alpha) * image.",
        lower_bound=0,
        upper_bound=1,
        flag_values=fv,
    )


def define_export_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.export`."""
    fv = flag_values
    _define_workdir(fv)
    flags.DEFINE_string("output", None, "Folder of the exported SavedModel.", flag_values=fv)
    flags.mark_flag_as_required("output", flag_values=fv)


def define_retrieval_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.retrieval`."""
    fv = flag_values
    flags.DEFINE_list("workdirs", None, "Comma-separated run directories.", flag_values=fv)
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.mark_flags_as_required(["workdirs", "output"], flag_values=fv)
    flags.DEFINE_list(
        "names", None, "Legend names, one per workdir; default: the folder names.", flag_values=fv
    )
    flags.DEFINE_string(
        "domain_source", None, "Source domain (a built-in name or a folder dataset); default: "
        "each run's source.", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string(
        "domain_target", None, "Target domain (a built-in name or a folder dataset); default: "
        "each run's target.", flag_values=fv,
    )  # fmt: skip
    for name in ("domain_source", "domain_target"):
        config_flags.register_domains_validator(name, fv)
    flags.DEFINE_integer("num_vectors", 5000, "Vectors per domain.", lower_bound=2, flag_values=fv)
    flags.DEFINE_integer(
        "positions_per_image", 10, "Random positions per image.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer("seed", 0, "Seed of the position draw.", flag_values=fv)
    flags.DEFINE_integer("max_k", 49, "Largest k.", lower_bound=1, flag_values=fv)
    flags.register_validator(
        "workdirs",
        lambda value: (
            value is None
            or all(os.path.isfile(os.path.join(w, workdir_lib.CONFIG_FILE)) for w in value)
        ),
        message="--workdirs must name run directories (each with a config.json).",
        flag_values=fv,
    )


def define_predict_grid_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.predict_grid`."""
    fv = flag_values
    flags.DEFINE_string("source_only_workdir", None, "The source-only run.", flag_values=fv)
    flags.DEFINE_string("adapted_workdir", None, "The adapted (UADA) run.", flag_values=fv)
    flags.DEFINE_string(
        "domain", None, "Domain of the images (validation split): a built-in name or a folder "
        "dataset.", flag_values=fv,
    )  # fmt: skip
    config_flags.register_domains_validator("domain", fv)
    flags.DEFINE_list(
        "indices", ["0", "1", "2"], "Positions of the images in the split.", flag_values=fv
    )
    flags.DEFINE_string("output", "grid.png", "Figure path (.png or .pdf).", flag_values=fv)
    flags.DEFINE_list(
        "names", ["source only", "adapted"], "Titles of the two prediction columns.",
        flag_values=fv,
    )  # fmt: skip
    flags.mark_flags_as_required(
        ["source_only_workdir", "adapted_workdir", "domain"], flag_values=fv
    )
    for name in ("source_only_workdir", "adapted_workdir"):
        flags.register_validator(
            name,
            lambda value: (
                value is None or os.path.isfile(os.path.join(value, workdir_lib.CONFIG_FILE))
            ),
            message=f"--{name} must be a run directory (with a config.json).",
            flag_values=fv,
        )
    flags.register_validator(
        "indices",
        lambda value: all(v.isdigit() for v in value) and len(value) > 0,
        message="--indices must be non-negative integers, e.g. 0,1,2.",
        flag_values=fv,
    )
    flags.register_validator(
        "names",
        lambda value: len(value) == 2,
        message="--names must give two column titles, e.g. 'source only,UADA'.",
        flag_values=fv,
    )


def define_selection_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.selection`."""
    fv = flag_values
    flags.DEFINE_list("workdirs", None, "Comma-separated run directories.", flag_values=fv)
    flags.mark_flag_as_required("workdirs", flag_values=fv)
    flags.DEFINE_list(
        "names", None, "Row names, one per workdir; default: the folder names.", flag_values=fv
    )
    flags.DEFINE_string(
        "curve", "eval_curve.csv",
        "The curve file in each workdir, e.g. eval_curve_384x768_adabn.csv.", flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_string("output", None, "Also write the report to this file.", flag_values=fv)


def define_diagnostics_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.diagnostics`."""
    fv = flag_values
    flags.DEFINE_list("workdirs", None, "Comma-separated run directories.", flag_values=fv)
    flags.DEFINE_string(
        "output", None, "Figure path (.png); the CSV is written beside it.", flag_values=fv
    )
    flags.mark_flags_as_required(["workdirs", "output"], flag_values=fv)
    flags.DEFINE_list(
        "names", None, "Legend names, one per workdir; default: the folder names.", flag_values=fv
    )
    flags.DEFINE_list(
        "metrics",
        None,
        "The training scalars drawn, one panel each; default: UADA's domain_accuracy, "
        "confusion_clipped_fraction and confusion_gradient_ratio. Another method's diagnostics: "
        "e.g. discriminator_accuracy (advent, adaptsegnet) or "
        "pseudo_label_confidence,pseudo_label_kept_fraction (self_training).",
        flag_values=fv,
    )
    flags.register_validator(
        "metrics",
        lambda value: value is None or bool(value),
        message="--metrics must name at least one scalar.",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["workdirs", "names"],
        lambda values: values["names"] is None or len(values["names"]) == len(values["workdirs"]),
        message="--names must give one name per --workdirs entry.",
        flag_values=fv,
    )


def define_inspect_dataset_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.inspect_dataset PATH`."""
    fv = flag_values
    flags.DEFINE_string(
        "output", None, "The preview (.png); default: <folder name>_preview.png.", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_images", 0, "Labels read per split (the first ones); 0 for all.", lower_bound=0,
        flag_values=fv,
    )  # fmt: skip
    flags.DEFINE_integer(
        "preview_images", 4, "Images in the preview.", lower_bound=1, flag_values=fv
    )


def define_demo_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.demo` (writes the demo domains)."""
    fv = flag_values
    flags.DEFINE_string("output", None, "Output folder.", flag_values=fv)
    flags.mark_flag_as_required("output", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of the domains' content.", flag_values=fv)
    flags.DEFINE_integer("height", 128, "Image height.", flag_values=fv)
    flags.DEFINE_integer("width", 256, "Image width.", flag_values=fv)
    flags.DEFINE_list(
        "shift",
        ["full"],
        "Shift factors between the source and the other domains, of "
        f"{list(config_lib.SHIFT_NAMES)}.",
        flag_values=fv,
    )
    register_names_validator("shift", config_lib.SHIFT_NAMES, fv, required=True)


def define_pretrain_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.pretrain` (pretrains `resnet_tiny`)."""
    fv = flag_values
    flags.DEFINE_string(
        "output", None, "The weights file to write (ending in .weights.h5).", flag_values=fv
    )
    flags.mark_flag_as_required("output", flag_values=fv)
    flags.register_validator(
        "output",
        lambda value: value is None or value.endswith(".weights.h5"),
        message="--output must be a file name ending in .weights.h5.",
        flag_values=fv,
    )
    from uada.runs import backbone_pretraining  # the default lives with `pretrain_resnet_tiny`

    flags.DEFINE_integer(
        "steps",
        backbone_pretraining.DEFAULT_STEPS,
        "Training steps.",
        lower_bound=1,
        flag_values=fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the images and the initialization.", flag_values=fv)


def define_reproduce_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.reproduce`."""
    fv = flag_values
    flags.DEFINE_list(
        "table",
        None,
        f"Tables, comma-separated, of {[str(t) for t in paper_tables.TABLES]} (the paper's by "
        "number; 'methods': the adaptation methods with DAN and BN), or 'all': every table of "
        "the paper (with --demo: every one the demo has).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("table", flag_values=fv)
    flags.register_validator(
        "table",
        lambda value: (
            value is None
            or value == ["all"]
            or (bool(value) and all(v in [str(t) for t in paper_tables.TABLES] for v in value))
        ),
        message=f"--table must be 'all' or a comma-separated list of {list(paper_tables.TABLES)}.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "seeds",
        [],
        "Run every cell once per seed (comma-separated integers, e.g. 0,1,2) and render mean ± "
        "standard deviation with the individual runs; default: one run with each experiment's "
        "seed.",
        flag_values=fv,
    )
    flags.register_validator(
        "seeds",
        lambda value: all(v.lstrip("-").isdigit() for v in value) and len(set(value)) == len(value),
        message="--seeds must be distinct integers, e.g. 0,1,2.",
        flag_values=fv,
    )
    flags.DEFINE_list(
        "rows",
        [],
        'Only these row labels of the --table, comma-separated (e.g. "source only,UADA"): '
        "their runs and the comparisons between them; default: every row.",
        flag_values=fv,
    )
    flags.DEFINE_boolean(
        "demo", False, "Map the experiments to the demo domains and settings.", flag_values=fv
    )
    flags.DEFINE_boolean("dry_run", False, "Print what would run; run nothing.", flag_values=fv)
    flags.DEFINE_string("workdir_root", "workdirs", "Folder of the runs' workdirs.", flag_values=fv)
    flags.DEFINE_string(
        "experiments_dir",
        table_runs.EXPERIMENTS_DIR,
        "Folder of the experiment files (<name>.flags, base.flags, demo.flags); relative "
        "--flagfile= lines inside them are resolved against its parent folder.",
        flag_values=fv,
    )
    flags.register_validator(
        "experiments_dir",
        os.path.isdir,
        message="--experiments_dir must be an existing folder of experiment files, e.g. the "
        "repository's experiments/.",
        flag_values=fv,
    )
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
        "convention", "official", list(tables.CONVENTIONS), "mIoU convention.", flag_values=fv
    )
    flags.DEFINE_string(
        "output",
        None,
        "Markdown file (one --table only); default WORKDIR_ROOT/[demo_tables/]table<N>.md "
        "(table_methods.md).",
        flag_values=fv,
    )
