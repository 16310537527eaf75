"""How well label-free signals pick checkpoints, over the evaluation curves of several runs.

    python -m uada.selection --workdirs=DIR_A,DIR_B [--names=a,b] [--curve=eval_curve.csv] \
        [--output=selection.md]

Reads each run's evaluation curve (written by `python -m uada.evaluate --workdir=DIR
--checkpoints=all`, from a run trained with `--keep_checkpoints=0`) and prints, per run and
signal (`uada.analysis.selection.selection_report`): Spearman's rank correlation over the
checkpoints between the signal's score (oriented so that higher is better) and the mIoU on the
run's target domain, and the target mIoU of the last checkpoint against that of the checkpoint the
signal selects; a last row per signal averages the gain over the runs. The target labels are used
here only to *measure* the signals, never to select.
"""

import os

from absl import app, flags

from uada import flags as uada_flags
from uada import train_lib
from uada.analysis import selection


def report(workdirs, *, names=None, curve="eval_curve.csv"):
    """The selection report (Markdown) of the curves `WORKDIR/<curve>` of `workdirs`.

    Raises:
        FileNotFoundError: a workdir has no such curve; the message gives the command to write it.
        ValueError: `names` does not give one distinct name per workdir.
    """
    workdirs = list(workdirs)
    names = list(names) if names else [os.path.basename(os.path.normpath(w)) for w in workdirs]
    if len(names) != len(workdirs) or len(set(names)) != len(names):
        raise ValueError(
            f"`names` must give one distinct name per workdir ({len(workdirs)}). "
            f"Received: names={names}"
        )
    curves, targets = {}, {}
    for name, workdir in zip(names, workdirs, strict=True):
        path = os.path.join(workdir, curve)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} not found: write it with `python -m uada.evaluate --workdir={workdir} "
                f"--checkpoints=all` (the run needs several checkpoints: --keep_checkpoints=0). "
                f"Received: curve={curve!r}"
            )
        curves[name] = selection.read_curve(path)
        targets[name] = train_lib.load_config(workdir).target
    return selection.selection_report(curves, targets)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    fv = flags.FLAGS
    try:
        text = report(fv.workdirs, names=fv.names, curve=fv.curve)
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
