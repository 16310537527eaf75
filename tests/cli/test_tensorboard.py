"""A smoke run's TensorBoard logs, read back with TensorBoard's own reader."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util

from uada.data import labels as labels_lib
from uada.models import losses, schedules
from uada.runs import trainer
from uada.runs import workdir as workdir_lib

SCALARS = ("loss", "seg_loss", "domain_loss", "confusion_loss", "domain_accuracy",
           "confusion_clipped_fraction", "confusion_gradient_ratio", "lr", "sigma",
           "skipped_steps")  # fmt: skip


@pytest.fixture(scope="module")
def events(smoke_run):
    """TensorBoard's view of `WORKDIR/train`, every event kept."""
    accumulator = plugin_event_accumulator.EventAccumulator(
        os.path.join(smoke_run.workdir, "train"), size_guidance={"tensors": 0}
    )
    return accumulator.Reload()


def _series(events, tag):
    """`{step: TensorProto}` of a tag (TensorBoard stores TF2 scalars and images as tensors)."""
    return {event.step: event.tensor_proto for event in events.Tensors(tag)}


def _scalars(events, tag):
    """`{step: float}` of a scalar tag; TensorBoard must file it under its scalars plugin."""
    assert events.SummaryMetadata(tag).plugin_data.plugin_name == "scalars", tag
    return {
        step: float(tensor_util.make_ndarray(proto)) for step, proto in _series(events, tag).items()
    }


def test_scalars_are_the_logged_values(smoke_run, events):
    config = smoke_run.config  # 4 G steps, logged every 2, UADA with lambda 0.01, 1 ramp epoch
    image_tags = {"source/image_label_prediction", "target/image_label_prediction"}
    assert set(events.Tags()["tensors"]) == set(SCALARS) | image_tags
    scalars = {tag: _scalars(events, tag) for tag in SCALARS}
    for tag, series in scalars.items():
        assert sorted(series) == [2, 4], tag
    # lr and sigma are those of the step's G update (optimizer iteration n - 1; sigma of the
    # D + G steps taken before it, 2 (n - 1)), not averaged.
    lr = schedules.learning_rate_schedule(
        config.learning_rate,
        steps_per_epoch=config.steps_per_epoch,
        decay_epochs=config.lr_decay_epochs,
        factor=config.lr_decay_factor,
    )
    for step in (2, 4):
        assert scalars["lr"][step] == pytest.approx(float(lr(step - 1)), rel=1e-7)
        sigma = float(schedules.instance_noise_sigma(2 * (step - 1)))
        assert scalars["sigma"][step] == pytest.approx(sigma, rel=1e-7)
        assert scalars["skipped_steps"][step] == 0
        assert 0 <= scalars["domain_accuracy"][step] <= 1
        assert 0 <= scalars["confusion_clipped_fraction"][step] <= 1
        assert scalars["confusion_gradient_ratio"][step] >= 0
        assert scalars["seg_loss"][step] > 0 and scalars["domain_loss"][step] > 0
    # loss is the G objective averaged over the steps since the last log: seg_loss + L2 term +
    # lambda * ramp * confusion_loss, the ramp being 0 for the first epoch (steps 1 and 2) and 1
    # after. The L2 term, from the weights of checkpoints 2 and 4, moves little in two steps
    # (measured: 6e-6 relative; lambda * confusion_loss is 4% of it, so the ramp is checked too).
    model = workdir_lib.build_model(smoke_run.config, config.steps_per_epoch)
    regularization = {}
    for step in (2, 4):
        prefix = os.path.join(workdir_lib.checkpoint_dir(smoke_run.workdir), f"ckpt-{step}")
        workdir_lib.restore_model(model, smoke_run.workdir, prefix)
        regularization[step] = float(
            losses.l2_regularization(model._l2_weights, model.l2_regularization)
        )
    ramp = {2: 0.0, 4: 1.0}
    # No confusion gradient reaches R during the ramp; after it, lambda 0.01 makes it small.
    assert scalars["confusion_gradient_ratio"][2] == 0
    assert scalars["confusion_gradient_ratio"][4] > 0
    for step in (2, 4):
        objective = scalars["seg_loss"][step] + (
            config.lambda_conf * ramp[step] * scalars["confusion_loss"][step]
        )
        assert scalars["loss"][step] - objective == pytest.approx(regularization[step], rel=1e-3)


def test_images_are_image_label_prediction_side_by_side(smoke_run, events):
    config = smoke_run.config
    height, width = config.image_size
    # The same fixed validation images the training loop logs.
    batches = trainer._image_summary_batches(config)
    palette = {tuple(color) for color in labels_lib.PALETTE}
    for role, (images, label_maps) in batches.items():
        tag = f"{role}/image_label_prediction"
        assert events.SummaryMetadata(tag).plugin_data.plugin_name == "images"
        series = _series(events, tag)
        assert sorted(series) == [1, 3]  # step 1, then every image_summary_every (3) steps
        for step, proto in series.items():
            # TensorBoard's image format: [width, height, PNG, PNG, ...].
            logged_width, logged_height, *pngs = proto.string_val
            assert (int(logged_width), int(logged_height)) == (3 * width, height)
            assert len(pngs) == len(images) == 2
            for png, image, label_map in zip(pngs, images.numpy(), label_maps, strict=True):
                row = np.asarray(Image.open(io.BytesIO(png)))
                assert row.shape == (height, 3 * width, 3), step
                np.testing.assert_array_equal(row[:, :width], image.astype(np.uint8))
                np.testing.assert_array_equal(
                    row[:, width : 2 * width], labels_lib.colorize(label_map)
                )
                predicted = {tuple(c) for c in row[:, 2 * width :].reshape(-1, 3)}
                assert predicted <= palette, step  # a prediction: train ids only, no 255
