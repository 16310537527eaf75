"""How well label-free signals pick checkpoints, over the evaluation curves of several runs.

    python -m uada.selection --workdirs=DIR_A,DIR_B [--names=a,b] [--curve=eval_curve.csv] \
        [--output=selection.md]

Reads each run's evaluation curve (written by `python -m uada.evaluate --workdir=DIR
--checkpoints=all`, from a run trained with `--keep_checkpoints=0`) and prints, per run and
signal (`uada.analysis.checkpoint_selection.workdirs_report`): Spearman's rank correlation over the
checkpoints between the signal's score (oriented so that higher is better) and the mIoU on the
run's target domain, and the target mIoU of the last checkpoint against that of the checkpoint the
signal selects; a last row per signal averages the gain over the runs. The target labels are used
here only to *measure* the signals, never to select.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app, flags

from uada import flags as uada_flags
from uada.analysis import checkpoint_selection


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    try:
        text = checkpoint_selection.workdirs_report(fv.workdirs, names=fv.names, curve=fv.curve)
    except (FileNotFoundError, ValueError) as error:
        raise app.UsageError(str(error)) from error
    print(
        "\nLabel-free checkpoint selection: Spearman's rho of each signal's score (higher is "
        "better: -|domain_accuracy - 0.5|, -target_entropy, retrieval_alignment) with the target "
        "mIoU over the checkpoints, and the target mIoU (%) of the last and the selected "
        "checkpoint\n"
    )
    print(text)
    if fv.output:
        with open(fv.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    uada_flags.define_selection_flags()
    flags.adopt_module_key_flags(uada_flags)  # --help lists them
    app.run(main)
