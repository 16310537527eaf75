"""The adversarial game of UADA runs over training, on one figure.

    python -m uada.diagnostics --workdirs=DIR_A,DIR_B --output=diagnostics.png \
        [--names="UADA DAN,UADA BN"]

Reads the TensorBoard scalars each run's training wrote to `WORKDIR/train` and draws, against the
G step, one line per run: `domain_accuracy`, `confusion_clipped_fraction` and
`confusion_gradient_ratio` (`uada.models.UADAModel`, *Metrics*). Writes `--output` and, beside
it, a CSV with the columns `step, run, metric, value`, and prints each run's mean of the three
over the last quarter of training. The work is
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
        paths = figures.plot_adversarial_diagnostics(runs, fv.output)
        text, _ = figures.summarize_adversarial_diagnostics(runs)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    print(text)
    print("Written " + ", ".join(paths))


if __name__ == "__main__":
    uada_flags.define_diagnostics_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
