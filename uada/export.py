"""Exports a trained run's inference segmenter as a TensorFlow SavedModel.

    python -m uada.export --workdir=DIR --output=OUT [--checkpoint=...]

The SavedModel (Keras `ExportArchive`) has one endpoint, `serve`: float32 RGB images in [0, 255],
shape `[N, H, W, 3]` with any `N` and the run's `H, W` (preprocessing is inside), to float32 class
scores (logits) `[N, H, W, 19]`. There is no domain input: every image is normalized with the
moving statistics. Load it without uada:

```python
model = tf.saved_model.load("OUT")
logits = model.serve(tf.zeros([2, 384, 768, 3]))
```
"""

import keras
import tensorflow as tf
from absl import app

from uada.runs import workdir as workdir_lib


def export(config, workdir, output, *, checkpoint=None, model=None):
    """Writes the SavedModel of the run's segmenter to `output`; returns `output`.

    Args:
        config: the run's `Config`.
        workdir: the run's directory.
        output: the SavedModel folder.
        checkpoint: a checkpoint prefix; `None` for the workdir's latest.
        model: an already restored `UADAModel`, else one is built and restored.
    """
    if model is None:
        model, _ = workdir_lib.load_model(config, workdir, checkpoint)
    segmenter = model.segmenter
    height, width = config.image_size
    archive = keras.export.ExportArchive()
    archive.track(segmenter)
    archive.add_endpoint(
        "serve",
        lambda images: tf.cast(segmenter(images, training=False), tf.float32),
        input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="images")],
    )
    archive.write_out(output, verbose=False)
    print(f"Exported the segmenter of {workdir} to {output}")
    return output


def main(argv):
    from uada import flags as uada_flags

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
    fv = uada_flags.flags.FLAGS
    export(workdir_lib.load_config(fv.workdir), fv.workdir, fv.output, checkpoint=fv.checkpoint)


if __name__ == "__main__":
    from uada import flags as uada_flags

    uada_flags.define_export_flags()
    app.run(main)
