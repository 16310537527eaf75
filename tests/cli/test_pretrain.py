"""`uada.runs.backbone_pretraining.pretrain_resnet_tiny` and `python -m uada.pretrain`: the file
they write is the resnet_tiny weights `--weights=FILE` loads."""

import os

import keras
import numpy as np
import pytest
from conftest import run_main

from uada.models import build_backbone
from uada.runs import backbone_pretraining


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A few pretraining steps on tiny images; returns (weights file, trained base model)."""
    path = tmp_path_factory.mktemp("pretrain") / "new" / "folder" / "tiny.weights.h5"
    trained = {}
    original = keras.Model.save_weights

    def save_weights(model, *args, **kwargs):  # keep the base the function saves
        trained["base"] = model
        return original(model, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", save_weights)
        accuracy = backbone_pretraining.pretrain_resnet_tiny(
            path, steps=3, batch_size=4, image_size=(32, 32), held_out_images=8, verbose=0
        )
    assert 0 <= accuracy <= 1
    return path, trained["base"]


def test_pretrained_weights_load_into_the_backbone(pretrained):
    path, base = pretrained
    assert os.listdir(path.parent) == [path.name]  # no temporary file left
    assert base.name == "resnet_tiny"
    backbone = build_backbone("resnet_tiny", "dan", 8, weights=str(path))
    # The kernels are the trained base's (not those of a new initialization).
    convs = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 17
    for conv in convs:
        np.testing.assert_array_equal(
            backbone.get_layer(conv.name).kernel.numpy(), conv.kernel.numpy(), err_msg=conv.name
        )
    # Training moved the BN statistics away from a new layer's, and they were copied (the
    # conv bias folded into the moving mean).
    source = base.get_layer("conv1_bn")
    bias = base.get_layer("conv1_conv").bias.numpy()
    np.testing.assert_allclose(
        backbone.get_layer("conv1_bn").moving_mean.numpy(),
        source.moving_mean.numpy() - bias,
        rtol=1e-6,
    )
    assert np.abs(source.moving_mean.numpy()).max() > 0


def test_output_must_be_a_weights_file(tmp_path):
    with pytest.raises(ValueError, match="output='tiny.h5'"):
        backbone_pretraining.pretrain_resnet_tiny("tiny.h5", steps=1)


def test_unwritable_output_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = blocker / "tiny.weights.h5"  # a path component is a file
    with pytest.raises(OSError, match="tiny.weights.h5"):
        backbone_pretraining.pretrain_resnet_tiny(
            path, steps=1, batch_size=2, image_size=(16, 16), held_out_images=2, verbose=0
        )


def test_command_rejects_a_bad_output():
    result = run_main("uada.pretrain", "--output=tiny.h5", check=False)
    assert result.returncode != 0 and "--output" in result.stderr
