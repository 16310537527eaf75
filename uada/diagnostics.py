"""The adversarial game of UADA runs (or another method's diagnostics) over training, on one figure.

    python -m uada.diagnostics --workdirs=DIR_A,DIR_B --output=diagnostics.png \
        [--names="UADA DAN,UADA BN"] [--metrics=discriminator_accuracy,discriminator_loss]

Reads the TensorBoard scalars each run's training wrote to `WORKDIR/train` and draws, against the
G step, one line per run and one panel per metric: by default `domain_accuracy`,
`confusion_clipped_fraction` and `confusion_gradient_ratio` (`uada.models.UADAModel`,
*Metrics*); `--metrics` names others, e.g. the output-space discriminator's
`discriminator_accuracy` (advent, adaptsegnet) or the self-training's `pseudo_label_confidence`
and `pseudo_label_kept_fraction` (`uada.methods`). Writes `--output` and, beside it, a CSV with
the columns `step, run, metric, value`, and prints each run's mean of each metric over the last
quarter of training. The work is
`uada.analysis.figures.plot_adversarial_diagnostics`'s and `summarize_adversarial_diagnostics`'s.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

import os

from absl import app, flags

from uada import flags as uada_flags
from uada.analysis import figures


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    names = fv.names or [os.path.basename(os.path.normpath(w)) for w in fv.workdirs]
    runs = list(zip(names, fv.workdirs, strict=True))
    try:
        metrics = fv.metrics or figures.ADVERSARIAL_DIAGNOSTICS
        paths = figures.plot_adversarial_diagnostics(runs, fv.output, metrics)
        text, _ = figures.summarize_adversarial_diagnostics(runs, metrics=metrics)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    print(text)
    print("Written " + ", ".join(paths))


if __name__ == "__main__":
    uada_flags.define_diagnostics_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
