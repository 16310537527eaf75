"""Input pipelines: prepared examples in, batches for training and evaluation out.

The inputs are `tf.data.Dataset`s of dicts `{"image": uint8 [H, W, 3], "label": uint8 [H, W],
"file_name": string}` with train ids 0..18 and 255, as `uada.data.builders.load` returns them.
The model does its backbone's preprocessing itself, so the pipelines hand it float32 RGB images in
[0, 255] and int32 train-id labels.

Training, per domain, in this order:

1. keep `image` (and `label` for the source; target labels never enter training);
2. shuffle with a buffer of `shuffle_buffer` examples, a new order every epoch, the sequence of
   orders fixed by `seed`; repeat forever;
3. number the examples (0, 1, 2, ... over all epochs) and derive each one's augmentation seed from
   `(seed, domain, number)`;
4. in parallel, deterministically: resize to `image_size` if asked (image bilinear with
   anti-aliasing, label nearest), cast, augment (`uada.data.augment.augment`, both domains);
5. batch `batch_size` with `drop_remainder=True` (static shapes).

Then the source and target batches are zipped and prefetched (`train_dataset`):
`((source_images [B, H, W, 3], source_labels [B, H, W]), target_images [B, H, W, 3])`, or
`(source_images, source_labels)` without a target.

Everything is a pure function of `seed`: two pipelines built with the same arguments yield the same
elements. `train_iterator` yields the same elements from an iterator per domain, paired in Python:
saved with `tf.train.Checkpoint(iterator=iterator)`, it resumes with the element that would have
come next, however many times a run is resumed (`iter(train_dataset(...))` checkpoints too, but
see `train_iterator` for why a resumed run's checkpoint of it does not restore past an epoch).
The training pipeline uses tf.data's *symbolic* checkpointing by default, so a checkpoint stores
positions, not the shuffle and prefetch buffers (which would be hundreds of MB of images); restoring
replays the inputs up to the saved position. TFDS caches small datasets in memory, which symbolic
checkpointing does not support: read them with `read_config=tfds.ReadConfig(try_autocache=False)` or
pass `symbolic_checkpoint=False`.

For whole-dataset shuffling of a large prepared TFDS dataset, also let TFDS shuffle its files:
`builders.load(..., shuffle_files=True, read_config=tfds.ReadConfig(shuffle_seed=seed))`; the
shuffle buffer then mixes examples across files.

Evaluation reads one ordered pass, without augmentation, and keeps the last partial batch.

The functions these pipelines trace branch only on Python values or with `tf.switch_case`, so
they are traced without AutoGraph, whose conversion would otherwise take seconds of every
pipeline's set-up. The augmentation's switches keep their branches as functions
(`uada.framework_internals.unlowered_switch_case`): creating an iterator makes no kernels for the
branches an element may not take.
"""

import inspect

import tensorflow as tf

from uada.data import augment as augment_lib

_SOURCE, _TARGET = 0, 1


# Traced once per process and shared by every pipeline: the augmentation graph is large (the blur
# branches hold about 2,000 ops) and tracing it anew for each dataset would cost seconds.
@tf.function(
    input_signature=[
        tf.TensorSpec([None, None, 3], tf.float32),
        tf.TensorSpec([2], tf.int64),
    ],
    autograph=False,
)
def _augment(image, seed):
    return augment_lib.augment(image, seed)


def resize(image, label, image_size):
    """Resizes an image (bilinear, anti-aliased) and its label map (nearest) to `image_size`.

    Args:
        image: `[H, W, 3]` tensor, any real dtype.
        label: `[H, W]` integer tensor, or None.
        image_size: `(height, width)`.

    Returns:
        `(image, label)`: float32 `[height, width, 3]` and `label`'s dtype `[height, width]` (None
        if `label` is None). An image that already has the size is only cast.
    """
    height, width = _check_image_size(image_size)
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    if label is not None and tuple(label.shape[:2]) != (height, width):
        label = tf.image.resize(label[..., None], (height, width), method="nearest")[..., 0]
    return image, label


def prepare(image, label=None, image_size=None):
    """Resizes (if `image_size` is given) and casts one example for the model.

    Args:
        image: uint8 (or float) `[H, W, 3]` RGB in [0, 255].
        label: integer `[H, W]` train ids, or None.
        image_size: `(height, width)` or None to keep the size.

    Returns:
        `(image, label)`: float32 `[H, W, 3]` in [0, 255] and int32 `[H, W]` (None if `label` is
        None).
    """
    if image_size is not None:
        image, label = resize(image, label, image_size)
    image = tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 255.0)
    if label is not None:
        label = tf.cast(label, tf.int32)
    return image, label


def train_dataset(
    source,
    target=None,
    *,
    batch_size=2,
    seed=0,
    augment=True,
    image_size=None,
    shuffle_buffer=200,
    symbolic_checkpoint=True,
):
    """The infinite training stream: source batches with labels, zipped with target batches.

    Args:
        source: `tf.data.Dataset` of dicts with `image` and `label` (see the module docstring).
        target: `tf.data.Dataset` of dicts with `image` (labels are dropped), or None for the
            source-only stream.
        batch_size: images per domain per element (the paper: 2).
        seed: integer; fixes the order of every epoch and every augmentation.
        augment: whether to apply `uada.data.augment.augment` to both domains.
        image_size: `(height, width)` to resize to, or None if the datasets already have one
            static size (the `"384x768"` builder config).
        shuffle_buffer: examples per domain in the shuffle buffer; at least the dataset size for a
            full shuffle. The buffer lives in memory (about 1.2 MB per 384 x 768 example).
        symbolic_checkpoint: if True, an iterator checkpoint stores input positions only (small);
            every op upstream must support this, which TFDS's in-memory auto-cache of small
            datasets does not: read those with `read_config=tfds.ReadConfig(try_autocache=False)`
            or pass False here, and the checkpoint then holds the shuffle and prefetch buffers.

    Returns:
        An infinite `tf.data.Dataset` of `((source_images, source_labels), target_images)`, or of
        `(source_images, source_labels)` if `target` is None: float32 `[batch_size, H, W, 3]` in
        [0, 255] and int32 `[batch_size, H, W]`, all with static shapes.
    """
    source_stream, target_stream = _streams(
        source, target, batch_size=batch_size, seed=seed, augment=augment,
        image_size=image_size, shuffle_buffer=shuffle_buffer,
    )  # fmt: skip
    stream = source_stream
    if target_stream is not None:
        stream = tf.data.Dataset.zip((source_stream, target_stream))
    return stream.prefetch(tf.data.AUTOTUNE).with_options(_options(symbolic_checkpoint))


def train_iterator(source, target=None, **kwargs):
    """An iterator over the elements of `train_dataset(source, target, **kwargs)` whose position
    a `tf.train.Checkpoint` saves and restores any number of times.

    `iter(train_dataset(...))` checkpoints too, but with a target its state, once saved by an
    iterator that was itself restored, does not restore past the next epoch (TensorFlow 2.21's
    symbolic checkpoint of shuffled streams under a zip): a run resumed twice would stop there.
    This iterator draws each domain from its own iterator and pairs them in Python, so that
    nothing zips the shuffled streams; its elements are `train_dataset`'s, one for one.

    Args:
        source, target, **kwargs: as for `train_dataset`.

    Returns:
        Without a target, `iter(train_dataset(source, **kwargs))`; with one, a
        `PairedIterator`.
    """
    if target is None:
        return iter(train_dataset(source, None, **kwargs))
    # `train_dataset`'s arguments with its defaults: one place defines them.
    arguments = inspect.signature(train_dataset).bind(source, target, **kwargs)
    arguments.apply_defaults()
    options = _options(arguments.arguments.pop("symbolic_checkpoint"))
    streams = _streams(**arguments.arguments)
    return PairedIterator(*(s.prefetch(tf.data.AUTOTUNE).with_options(options) for s in streams))


class PairedIterator(tf.Module):
    """`((source_images, source_labels), target_images)` from a source and a target stream, each
    drawn from its own iterator (`train_iterator`).

    A trackable object: `tf.train.Checkpoint(iterator=paired)` saves both iterators' positions
    (as `iterator/source` and `iterator/target`).
    """

    def __init__(self, source_stream, target_stream):
        super().__init__(name="paired_iterator")
        self.source = iter(source_stream)
        self.target = iter(target_stream)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.source), next(self.target)


def _streams(source, target, *, batch_size, seed, augment, image_size, shuffle_buffer):
    """`train_dataset`'s checked arguments and its two domain streams (the target's None without
    a target), neither prefetched."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    if not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
        raise ValueError(
            f"`shuffle_buffer` must be a positive int. Received: shuffle_buffer={shuffle_buffer!r}"
        )
    if not isinstance(seed, int):
        raise ValueError(f"`seed` must be a Python int. Received: seed={seed!r}")
    common = dict(
        batch_size=batch_size,
        seed=seed,
        augment=augment,
        image_size=image_size,
        shuffle_buffer=shuffle_buffer,
    )
    source_stream = _domain_stream(
        source, domain=_SOURCE, with_labels=True, name="source", **common
    )
    target_stream = None
    if target is not None:
        target_stream = _domain_stream(
            target, domain=_TARGET, with_labels=False, name="target", **common
        )
    return source_stream, target_stream


def eval_dataset(dataset, *, batch_size=1, image_size=None):
    """One ordered pass over `dataset`, without augmentation.

    Args:
        dataset: `tf.data.Dataset` of dicts with `image` and `label`.
        batch_size: images per batch; the last batch may be smaller. Examples of different sizes
            (the `"full"` builder config) need `batch_size=1` or an `image_size`.
        image_size: `(height, width)` to resize to (label nearest), or None to keep each size.

    Returns:
        A finite `tf.data.Dataset` of `(images, labels)`: float32 `[B, H, W, 3]` in [0, 255] and
        int32 `[B, H, W]`, in the order of `dataset`.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}"
        )
    _check_dataset(dataset, "dataset", with_labels=True)
    if image_size is not None:
        _check_image_size(image_size)

    @tf.autograph.experimental.do_not_convert
    def prepare_example(example):
        return prepare(example["image"], example["label"], image_size)

    dataset = dataset.map(prepare_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _domain_stream(
    dataset, *, domain, with_labels, name, batch_size, seed, augment, image_size, shuffle_buffer
):
    """Steps 1-5 of the module docstring for one domain."""
    _check_dataset(dataset, name, with_labels=with_labels)
    static_size = _static_size(dataset, name, image_size)
    keys = ("image", "label") if with_labels else ("image",)
    # Only what training uses enters the shuffle buffer.
    dataset = dataset.map(
        tf.autograph.experimental.do_not_convert(lambda example: {k: example[k] for k in keys})
    )
    # With a fixed seed the order of every epoch is fixed; it still changes from epoch to epoch.
    dataset = dataset.shuffle(
        shuffle_buffer, seed=2 * seed + domain, reshuffle_each_iteration=True
    ).repeat()
    # The running number as a scan's state, not `enumerate` (a zip with a counter): tf.data's
    # symbolic checkpoint of a shuffle under a zip, saved by a restored iterator, does not
    # restore past the epoch (TensorFlow 2.21), so a run resumed twice would stop there.
    dataset = dataset.scan(tf.constant(0, tf.int64), _number)
    base_seed = tf.constant([seed, domain], dtype=tf.int64)

    @tf.autograph.experimental.do_not_convert
    def prepare_example(index, example):
        image, label = prepare(example["image"], example.get("label"), image_size)
        if augment:
            image = _augment(image, tf.random.experimental.stateless_fold_in(base_seed, index))
        image = tf.ensure_shape(image, static_size + (3,))
        if not with_labels:
            return image
        return image, tf.ensure_shape(label, static_size)

    dataset = dataset.map(prepare_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size, drop_remainder=True)


@tf.autograph.experimental.do_not_convert
def _number(count, example):
    """The scan function that numbers a stream: `(count + 1, (count, example))`."""
    return count + 1, (count, example)


def _options(symbolic_checkpoint=False):
    options = tf.data.Options()
    options.deterministic = True
    # Checkpoints store input positions, not buffers of images (see the module docstring).
    options.experimental_symbolic_checkpoint = bool(symbolic_checkpoint)
    return options


def _check_dataset(dataset, name, with_labels):
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`{name}` must be a tf.data.Dataset. Received: {name} of type {type(dataset).__name__}"
        )
    spec = dataset.element_spec
    needed = ("image", "label") if with_labels else ("image",)
    if not isinstance(spec, dict) or any(key not in spec for key in needed):
        raise ValueError(
            f"`{name}` must yield dicts with the keys {list(needed)}. Received: element_spec={spec}"
        )


def _static_size(dataset, name, image_size):
    """The (height, width) every training example will have, known before the pipeline runs."""
    if image_size is not None:
        return _check_image_size(image_size)
    shape = dataset.element_spec["image"].shape
    if shape.rank != 3 or shape[0] is None or shape[1] is None:
        raise ValueError(
            f"`{name}` has images of unknown size ({shape}); training needs one static size, so "
            "pass `image_size=(height, width)`. Received: image_size=None"
        )
    return (int(shape[0]), int(shape[1]))


def _check_image_size(image_size):
    if (
        not isinstance(image_size, tuple | list)
        or len(image_size) != 2
        or not all(isinstance(s, int) and s > 0 for s in image_size)
    ):
        raise ValueError(
            "`image_size` must be (height, width), two positive ints. "
            f"Received: image_size={image_size!r}"
        )
    return (int(image_size[0]), int(image_size[1]))
