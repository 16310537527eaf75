"""Exports a trained run's inference segmenter as a TensorFlow SavedModel.

    python -m uada.export --workdir=DIR --output=OUT [--checkpoint=...]

The SavedModel (Keras `ExportArchive`, written by `uada.runs.inference.export`) has one endpoint,
`serve`: float32 RGB images in [0, 255], shape `[N, H, W, 3]` with any `N` and the run's `H, W`
(preprocessing is inside), to float32 class scores (logits) `[N, H, W, K]` (K = 19 for the
built-in datasets, a folder source's card's classes otherwise). There is no domain input: every
image is normalized with the moving statistics. Load it without uada:

```python
model = tf.saved_model.load("OUT")
logits = model.serve(tf.zeros([2, 384, 768, 3]))
```
"""

# ruff: noqa: E402 (the imports below come after the console has started)
from uada import console

if __name__ == "__main__":
    console.start()  # before anything imports TensorFlow

from absl import app

from uada import command_errors
from uada import flags as uada_flags
from uada.runs import inference
from uada.runs import workdir as workdir_lib


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    fv = uada_flags.flags.FLAGS
    config = workdir_lib.load_config(fv.workdir)
    inference.export(config, fv.workdir, fv.output, checkpoint=fv.checkpoint)


if __name__ == "__main__":
    uada_flags.define_export_flags()
    errors = (*command_errors.CHECKPOINT_ERRORS, *command_errors.DATA_ERRORS)
    with command_errors.reported(*errors):  # a few lines, status 1
        app.run(main)
