"""Tests of the training and evaluation input pipelines."""

import numpy as np
import pytest
import tensorflow as tf

from uada.data import demo_generator, pipeline
from uada.data.labels import IGNORE_LABEL, PALETTE

_H, _W, _STRIPE = 16, 48, 8


def _label_of(k):
    """Example k's label: vertical stripes of width 8, classes k, k+1, ... (label[0, 0] == k)."""
    columns = (np.arange(_W) // _STRIPE + k) % 19
    return np.broadcast_to(columns, (_H, _W)).astype(np.uint8)


def _synthetic(n=6, offset=0):
    """n examples whose image is the palette colour of its label, so the label is a function of
    the pixels and of their positions."""
    labels = np.stack([_label_of(k + offset) for k in range(n)])
    images = PALETTE[labels]
    names = [f"frame_{k + offset}" for k in range(n)]
    return tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels, "file_name": names}
    )


def _ids(labels):
    return [int(label[0, 0]) for label in np.asarray(labels)]


def _flat(element):
    return [np.asarray(t) for t in tf.nest.flatten(element)]


def _assert_next_elements_are(expected, iterator):
    """The next `len(expected)` elements of `iterator` equal `expected` (`_flat` lists)."""
    for want in expected:
        for s, t in zip(want, _flat(next(iterator)), strict=True):
            np.testing.assert_array_equal(s, t)


def test_training_element_structure_shapes_dtypes():
    dataset = pipeline.train_dataset(_synthetic(), _synthetic(offset=10), batch_size=2, seed=0)
    (images, labels), target_images = dataset.element_spec
    assert images == tf.TensorSpec([2, _H, _W, 3], tf.float32)
    assert labels == tf.TensorSpec([2, _H, _W], tf.int32)
    assert target_images == tf.TensorSpec([2, _H, _W, 3], tf.float32)
    (images, labels), target_images = next(iter(dataset))
    assert images.shape == (2, _H, _W, 3) and labels.dtype == tf.int32

    source_only = pipeline.train_dataset(_synthetic(), batch_size=3, seed=0)
    assert source_only.element_spec == (
        tf.TensorSpec([3, _H, _W, 3], tf.float32),
        tf.TensorSpec([3, _H, _W], tf.int32),
    )


def test_without_augmentation_images_and_labels_are_the_prepared_inputs():
    dataset = pipeline.train_dataset(_synthetic(), _synthetic(offset=10), seed=1, augment=False)
    for (images, labels), target_images in dataset.take(4):
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            np.testing.assert_array_equal(label, _label_of(label[0, 0]))
            np.testing.assert_array_equal(image, PALETTE[label].astype(np.float32))
        for image in target_images.numpy():
            assert 10 <= PALETTE.tolist().index(image[0, 0].astype(int).tolist()) < 16


def test_augmentation_keeps_images_and_labels_aligned():
    dataset = pipeline.train_dataset(_synthetic(), batch_size=2, seed=2, augment=True)
    boundaries = np.arange(_STRIPE, _W, _STRIPE)  # first column of each stripe
    interiors = boundaries - _STRIPE // 2  # columns 4 pixels away from any boundary
    changed = 0
    for images, labels in dataset.take(8):
        for image, label in zip(images.numpy(), labels.numpy(), strict=True):
            # No geometric augmentation: the label is still the function of the original positions.
            np.testing.assert_array_equal(label, _label_of(label[0, 0]))
            assert image.min() >= 0.0 and image.max() <= 255.0
            changed += not np.array_equal(image, PALETTE[label])
            # Colour changes are per pixel and blurs reach at most 3 pixels, so the image still
            # changes exactly where the label changes and is flat inside every stripe.
            step = np.abs(np.diff(image, axis=1)).sum(axis=(0, 2))  # step[x-1]: x-1 -> x
            assert step[interiors - 1].max() < 1e-2
            assert step[boundaries - 1].min() > 1.0
    assert changed >= 8  # most of the 16 images were augmented


def test_training_is_reproducible_from_the_seed():
    def first(seed, count=3):
        dataset = pipeline.train_dataset(_synthetic(), seed=seed)
        return [_flat(element) for element in dataset.take(count)]

    a, b, c = first(5), first(5), first(6)
    for x, y in zip(a, b, strict=True):
        for s, t in zip(x, y, strict=True):
            np.testing.assert_array_equal(s, t)
    assert any(
        not np.array_equal(s, t)
        for x, y in zip(a, c, strict=True)
        for s, t in zip(x, y, strict=True)
    )


def test_each_epoch_is_a_new_permutation():
    dataset = pipeline.train_dataset(
        _synthetic(6), batch_size=1, seed=0, augment=False, shuffle_buffer=6
    )
    ids = [_ids(labels)[0] for _, labels in dataset.take(24)]
    epochs = [ids[i : i + 6] for i in range(0, 24, 6)]
    for epoch in epochs:
        assert sorted(epoch) == list(range(6))
    assert len({tuple(epoch) for epoch in epochs}) > 1
    assert epochs[0] != list(range(6))


@pytest.mark.parametrize("symbolic", [True, False])
def test_iterator_checkpoint_round_trip(tmp_path, symbolic):
    def make():
        # The full-buffer variant runs source-only to keep the test short.
        target = _synthetic(offset=10) if symbolic else None
        return pipeline.train_dataset(_synthetic(), target, seed=3, symbolic_checkpoint=symbolic)

    iterator = iter(make())
    for _ in range(5):  # into the second epoch
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt"))
    expected = [_flat(next(iterator)) for _ in range(4)]

    restored = iter(make())
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    _assert_next_elements_are(expected, restored)


@pytest.mark.parametrize("with_target", [True, False], ids=["source_and_target", "source_only"])
def test_a_checkpoint_written_after_a_resume_restores_across_epochs(tmp_path, with_target):
    # A run resumed once and checkpointed again (a second preemption): the third process
    # restores that checkpoint and goes on with the uninterrupted stream, epochs included.
    # (`iter(train_dataset(...))` with a target fails this at the first new epoch: TensorFlow's
    # symbolic checkpoint of shuffled streams under a zip; see `train_iterator`.)
    target = _synthetic(offset=10) if with_target else None

    def make():
        return pipeline.train_iterator(_synthetic(), target, seed=3)

    uninterrupted = iter(pipeline.train_dataset(_synthetic(), target, seed=3))
    expected = [_flat(next(uninterrupted)) for _ in range(12)]
    first = make()
    _assert_next_elements_are(expected[:4], first)
    path = tf.train.Checkpoint(iterator=first).write(str(tmp_path / "first"))
    resumed = make()
    tf.train.Checkpoint(iterator=resumed).read(path).assert_consumed()
    _assert_next_elements_are(expected[4:5], resumed)
    path = tf.train.Checkpoint(iterator=resumed).write(str(tmp_path / "resumed"))
    again = make()
    tf.train.Checkpoint(iterator=again).read(path).assert_consumed()
    # Steps 6-12: epochs 2 to 4 of the 6-example domains.
    _assert_next_elements_are(expected[5:], again)


def test_target_labels_never_enter():
    target = _synthetic(offset=10).map(lambda e: {"image": e["image"]})  # no label at all
    dataset = pipeline.train_dataset(_synthetic(), target, seed=0)
    assert len(tf.nest.flatten(dataset.element_spec)) == 3


def _two_sizes():
    big = _synthetic(2)
    small = tf.data.Dataset.from_tensor_slices(
        {
            "image": np.zeros((2, 8, 24, 3), np.uint8),
            "label": np.full((2, 8, 24), 5, np.uint8),
            "file_name": ["a", "b"],
        }
    )
    return big.concatenate(small)


def test_unknown_sizes_need_image_size_for_training():
    dataset = _two_sizes()
    assert dataset.element_spec["image"].shape.as_list() == [None, None, 3]
    with pytest.raises(ValueError, match="image_size=None"):
        pipeline.train_dataset(dataset)
    resized = pipeline.train_dataset(dataset, image_size=(8, 24), augment=False, seed=0)
    assert resized.element_spec[0].shape == (2, 8, 24, 3)
    for _, labels in resized.take(4):
        assert set(np.unique(labels).tolist()) <= set(range(19))


def test_eval_dataset_is_one_ordered_pass():
    batches = list(pipeline.eval_dataset(_synthetic(5), batch_size=2))
    assert [b[0].shape[0] for b in batches] == [2, 2, 1]
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert _ids(labels) == [0, 1, 2, 3, 4]
    assert batches[0][0].dtype == tf.float32 and batches[0][1].dtype == tf.int32
    np.testing.assert_array_equal(batches[0][0][0].numpy(), PALETTE[_label_of(0)])

    shapes = [images.shape for images, _ in pipeline.eval_dataset(_two_sizes())]
    assert shapes == [(1, _H, _W, 3)] * 2 + [(1, 8, 24, 3)] * 2


def test_prepare_is_the_same_eagerly_and_in_tf_data():
    image = PALETTE[_label_of(3)]
    label = _label_of(3)
    eager = pipeline.prepare(image, label, image_size=(8, 20))
    dataset = tf.data.Dataset.from_tensors((image, label)).map(
        lambda i, y: pipeline.prepare(i, y, image_size=(8, 20))
    )
    in_data = next(iter(dataset))
    np.testing.assert_allclose(eager[0], in_data[0], rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(eager[1], in_data[1])
    assert eager[0].shape == (8, 20, 3) and eager[1].dtype == tf.int32
    # Nearest neighbour: no new label values; stripes keep their order left to right.
    assert set(np.unique(eager[1]).tolist()) <= set(np.unique(label).tolist())
    assert np.all(np.diff(eager[1][0].numpy() % 19 - 3) >= 0)


def test_bad_arguments_raise_naming_them():
    with pytest.raises(TypeError, match="source"):
        pipeline.train_dataset([1, 2])
    with pytest.raises(ValueError, match="label"):
        pipeline.train_dataset(_synthetic().map(lambda e: {"image": e["image"]}))
    with pytest.raises(ValueError, match="batch_size=0"):
        pipeline.train_dataset(_synthetic(), batch_size=0)
    with pytest.raises(ValueError, match="image_size"):
        pipeline.eval_dataset(_synthetic(), image_size=(8,))


def test_demo_through_builders_to_training_batches(tmp_path):
    builders = pytest.importorskip("uada.data.builders")
    tfds = pytest.importorskip("tensorflow_datasets")
    paths = demo_generator.generate(
        tmp_path / "demo",
        seed=0,
        image_size=(32, 64),
        num_source=8,
        num_target_train=4,
        num_target_val=2,
        num_unseen_train=1,
        num_unseen_val=2,
    )
    # No in-memory auto-cache, so that iterator checkpoints can be symbolic.
    read_config = tfds.ReadConfig(try_autocache=False)

    def load(name, domain, split):
        return builders.load(
            name,
            split,
            data_dir=str(tmp_path / f"tfds_{domain}"),
            manual_dir=str(paths[domain]),
            config="full",
            read_config=read_config,
        )

    source = load("gta5", "source", "train")
    # The builder stores exactly the train ids the demo drew.
    for example in source.take(2):
        index = int(example["file_name"].numpy().decode().split("/")[-1][:5]) - 1
        image, label = demo_generator.draw_example("source", 0, index, (32, 64))
        np.testing.assert_array_equal(example["label"].numpy(), label)
        np.testing.assert_array_equal(example["image"].numpy(), image)

    dataset = pipeline.train_dataset(
        source, load("cityscapes", "target", "train"), seed=0, image_size=(32, 64)
    )
    iterator = iter(dataset)
    (images, labels), target_images = next(iterator)
    assert images.shape == target_images.shape == (2, 32, 64, 3)
    assert set(np.unique(labels).tolist()) <= set(range(19)) | {IGNORE_LABEL}
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt"))
    expected = _flat(next(iterator))
    restored = iter(dataset)
    tf.train.Checkpoint(iterator=restored).read(path)
    for s, t in zip(expected, _flat(next(restored)), strict=True):
        np.testing.assert_array_equal(s, t)

    val = pipeline.eval_dataset(load("cityscapes", "target", "val"), batch_size=2)
    assert [images.shape[0] for images, _ in val] == [2]
