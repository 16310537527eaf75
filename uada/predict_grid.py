"""Prediction grids as in the paper's Figure 5: image / ground truth / source-only / adapted.

    python -m uada.predict_grid --source_only_workdir=DIR_A --adapted_workdir=DIR_B \
        --domain=demo_target --indices=0,1,2 --output=grid.png [--names=source-only,UADA+DAN]

The images are the validation images `--indices` (positions in the split's order) of any domain,
at the adapted run's input size (labels resized with nearest neighbour, as in the paper's
evaluation); both models predict them in inference mode (moving statistics, no domain input).
Labels and predictions are coloured with the Cityscapes palette; the legend lists the classes
present. The format follows the extension of `--output` (`.png`, `.pdf`). The work is
`uada.analysis.prediction_grid.predict_grid`'s.
"""

import os

from absl import app, flags

from uada import config as config_lib
from uada.analysis import prediction_grid
from uada.runs import workdir as workdir_lib


def define_flags(flag_values=flags.FLAGS):
    """Defines the flags of `python -m uada.predict_grid`."""
    fv = flag_values
    flags.DEFINE_string("source_only_workdir", None, "The source-only run.", flag_values=fv)
    flags.DEFINE_string("adapted_workdir", None, "The adapted (UADA) run.", flag_values=fv)
    flags.DEFINE_enum(
        "domain", None, config_lib.DATASETS, "Domain of the images (validation split).",
        flag_values=fv,
    )  # fmt: skip
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    path = prediction_grid.predict_grid(
        fv.source_only_workdir,
        fv.adapted_workdir,
        fv.domain,
        [int(i) for i in fv.indices],
        fv.output,
        names=tuple(fv.names),
    )
    print(f"Written {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
