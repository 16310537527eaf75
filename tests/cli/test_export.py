"""The exported SavedModel, loaded in a fresh process without uada, predicts as the Keras model."""

import subprocess
import sys

import numpy as np
from conftest import FORWARD_DEPTH, HANG_GUARD_SECONDS, float32_error_bound, relative_error

from uada.runs import inference
from uada.runs import workdir as workdir_lib

_LOADER = """
import sys
import numpy as np
import tensorflow as tf
saved = tf.saved_model.load(sys.argv[1])
data = np.load(sys.argv[2])
outputs = {}
for name in ("images_1", "images_3"):
    outputs[name] = saved.serve(tf.constant(data[name])).numpy()
assert "uada" not in sys.modules, "the SavedModel must load without uada"
np.savez(sys.argv[3], **outputs)
"""


def test_exported_model_equals_keras_model_for_two_batch_sizes(smoke_run, tmp_path):
    config = smoke_run.config
    model = workdir_lib.build_model(config)
    workdir_lib.restore_model(model, smoke_run.workdir)
    output = str(tmp_path / "saved_model")
    inference.export(config, smoke_run.workdir, output, model=model)

    rng = np.random.default_rng(0)
    height, width = config.image_size
    inputs = {
        f"images_{n}": rng.uniform(0, 255, (n, height, width, 3)).astype(np.float32) for n in (1, 3)
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    subprocess.run(
        [sys.executable, "-c", _LOADER, output, str(tmp_path / "inputs.npz"),
         str(tmp_path / "outputs.npz")],
        cwd=tmp_path, check=True, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    outputs = np.load(tmp_path / "outputs.npz")
    # The same ops in the SavedModel's graph, which may fuse them and sum in another order: each
    # image's logits within float32's bound of the forward pass, whose largest reduction is the
    # extension's 3x3 convolution over 256 channels.
    bound = float32_error_bound(num_terms=9 * 256, depth=FORWARD_DEPTH)
    for name, images in inputs.items():
        expected = model.segmenter(images, training=False).numpy()
        assert outputs[name].shape == (len(images), height, width, 19)
        assert outputs[name].dtype == np.float32
        for got, want in zip(outputs[name], expected, strict=True):
            assert relative_error(got, want) <= bound, name
