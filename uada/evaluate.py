"""Per-domain, per-class IoU and mIoU of a trained run (the paper's Tables 1-6;
docs/FIDELITY.md, *Evaluation*).

    python -m uada.evaluate --workdir=DIR [--domains=cityscapes,mapillary] \
        [--checkpoint=DIR/checkpoints/ckpt-25279] [--resolution=384x768|full] [--output_json=PATH] \
        [--adapt_statistics=none|target] [--checkpoints=latest|all [--select=...]]
        [--checkpoints=last:3 --average]

`--adapt_statistics=target` evaluates each domain with AdaBN (`uada.models.adabn`): normalization
statistics recomputed on that domain's unlabelled training images; results in
`eval_<resolution>_adabn.json`. `--checkpoints=all` evaluates every kept checkpoint and reports
one chosen without target labels (`--select`; `uada.analysis.eval_curve.evaluate_checkpoints`);
`--checkpoints=last:K --average` reports the mean over the last K checkpoints, as the original
did (`uada.runs.checkpoint_average`); otherwise one checkpoint is evaluated
(`uada.runs.evaluation.evaluate`).

Domains default to the run's source, target and unseen domains, each on its validation split.
Results are printed as a Markdown table and written into the workdir as `eval_<resolution>.json`
and `eval_<resolution>.md` (`--output_json` chooses the JSON file; the table goes beside it with
the suffix `.md`); `uada.runs.evaluation` describes their contents and the resolutions. The
`<resolution>` in a file name is what was measured: `full`, or the model's input size
(`384x768` for the paper's runs, `128x256` for the demo's at `--resolution=384x768`).

A damaged checkpoint (files missing, truncated or failing their checksum) is an error of a few
lines naming it, the reason and the intact checkpoints to pass with `--checkpoint` (exit status
1; `--verbosity=1` adds the traceback); `--checkpoints=all` skips it and lists it.
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app

from uada import command_errors
from uada import flags as uada_flags
from uada.analysis import eval_curve
from uada.runs import checkpoint_average, evaluation, write_errors
from uada.runs import workdir as workdir_lib


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    flag_values = uada_flags.flags.FLAGS
    workdir = flag_values.workdir
    config = workdir_lib.load_config(workdir)
    options = dict(
        resolution=flag_values.resolution,
        max_images=flag_values.max_images,
        adapt_statistics=flag_values.adapt_statistics,
        adapt_max_images=flag_values.adapt_max_images,
    )
    last = checkpoint_average.parse_last(flag_values.checkpoints)
    if last:
        try:
            checkpoint_average.evaluate_last_checkpoints(
                config, workdir, flag_values.domains, last=last, **options
            )
        except ValueError as error:  # fewer checkpoints than asked: no traceback
            raise app.UsageError(str(error)) from error
    elif flag_values.checkpoints == "all":
        try:
            eval_curve.evaluate_checkpoints(
                config, workdir, flag_values.domains, select=flag_values.select, **options
            )
        except ValueError as error:  # a selection the run cannot make: no traceback
            raise app.UsageError(str(error)) from error
    else:
        evaluation.evaluate(
            config,
            workdir,
            flag_values.domains,
            checkpoint=flag_values.checkpoint,
            output_json=flag_values.output_json,
            **options,
        )


if __name__ == "__main__":
    uada_flags.define_evaluate_flags()
    # One line (a few for a damaged checkpoint or a missing dataset), exit status 1.
    errors = (write_errors.WorkdirWriteError, *command_errors.CHECKPOINT_ERRORS)
    with command_errors.reported(*errors, *command_errors.DATA_ERRORS):
        app.run(main)
