"""Prediction grids as in the paper's Figure 5: image / ground truth / source-only / adapted.

    python -m uada.predict_grid --source_only_workdir=DIR_A --adapted_workdir=DIR_B \
        --domain=demo_target --indices=0,1,2 --output=grid.png [--names=source-only,UADA+DAN]

The images are the validation images `--indices` (positions in the split's order) of any domain,
at the adapted run's input size (labels resized with nearest neighbour, as in the paper's
evaluation); both models predict them in inference mode (moving statistics, no domain input).
Labels and predictions are coloured with the run's palette (Cityscapes', or a folder source's
card's); the legend lists the classes present. The format follows the extension of `--output`
(`.png`, `.pdf`). The work is `uada.analysis.prediction_grid.predict_grid`'s.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app, flags

from uada import command_errors
from uada import flags as uada_flags
from uada.analysis import prediction_grid


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
    uada_flags.define_predict_grid_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    errors = (*command_errors.CHECKPOINT_ERRORS, *command_errors.DATA_ERRORS)
    with command_errors.reported(*errors):  # a few lines, exit status 1
        app.run(main)
