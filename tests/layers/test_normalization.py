"""The normalization family against Keras BatchNormalization and hand-computed values.

The formulas are those of docs/FIDELITY.md, *Normalization*.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from uada import layers

EPS = 1e-5
MOMENTUM = 0.96
SHAPE = (6, 5, 7, 4)  # N, H, W, C
NUM_SOURCE = 2


def _data(seed=0, shape=SHAPE):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 3.0 + 1.5).astype("float32")
    return x


def _params(channels, seed=1):
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 2.0, size=channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    return gamma, beta


def _built(layer, x, gamma, beta):
    layer.build(x.shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    return layer


def _dan(x, gamma, beta, **kwargs):
    return _built(layers.DomainAgnosticNormalization(**kwargs), x, gamma, beta)


def _bn(x, gamma, beta):
    return _built(keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS), x, gamma, beta)


def _np_normalize(x, mean, var, gamma, beta):
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


def _grads(layer, x, weights, **call_kwargs):
    """Output and gradients of `sum(y * weights)` w.r.t. the input, gamma and beta."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, **call_kwargs)
        loss = tf.reduce_sum(y * weights)
    gx, gg, gb = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y.numpy(), gx.numpy(), gg.numpy(), gb.numpy()


def test_dan_without_target_equals_keras_batch_norm():
    x = _data()
    gamma, beta = _params(SHAPE[-1])
    weights = _data(seed=5)
    dan, bn = _dan(x, gamma, beta), _bn(x, gamma, beta)
    for step in range(3):
        xs = x + step  # several training calls with different statistics
        for ours, ref in zip(_grads(dan, xs, weights), _grads(bn, xs, weights), strict=True):
            np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(dan.moving_mean.numpy(), bn.moving_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(dan.moving_variance.numpy(), bn.moving_variance.numpy(), atol=1e-5)
    # Sanity: the moving statistics did move away from their initial values.
    assert np.abs(dan.moving_mean.numpy()).min() > 0.1
    np.testing.assert_allclose(dan(x, training=False), bn(x, training=False), atol=1e-5)
    # num_source equal to the batch size is the same as no split.
    dan_full, bn_full = _dan(x, gamma, beta), _bn(x, gamma, beta)
    np.testing.assert_allclose(
        dan_full(x, training=True, num_source=SHAPE[0]), bn_full(x, training=True), atol=1e-5
    )


@pytest.mark.parametrize("target_scale", [1.0, 1e4])
def test_dan_mixed_batch_matches_source_only_and_formula(target_scale):
    x = _data()
    x[NUM_SOURCE:] = x[NUM_SOURCE:] * target_scale + target_scale
    gamma, beta = _params(SHAPE[-1])
    dan, bn = _dan(x, gamma, beta), _bn(x[:NUM_SOURCE], gamma, beta)
    for _ in range(3):
        y = dan(x, training=True, num_source=NUM_SOURCE).numpy()
        y_ref = bn(x[:NUM_SOURCE], training=True).numpy()
    np.testing.assert_allclose(y[:NUM_SOURCE], y_ref, atol=1e-5)
    # Target rows: the DAN formula (docs/FIDELITY.md, *Normalization*) with the current batch's
    # source statistics.
    mean = x[:NUM_SOURCE].mean(axis=(0, 1, 2), dtype=np.float64)
    var = x[:NUM_SOURCE].var(axis=(0, 1, 2), dtype=np.float64)
    expected_t = _np_normalize(x[NUM_SOURCE:].astype(np.float64), mean, var, gamma, beta)
    np.testing.assert_allclose(y[NUM_SOURCE:], expected_t, rtol=1e-5, atol=1e-5 * target_scale)
    # Moving statistics: identical to the run on the source samples alone.
    np.testing.assert_array_equal(dan.moving_mean.numpy(), bn.moving_mean.numpy())
    np.testing.assert_array_equal(dan.moving_variance.numpy(), bn.moving_variance.numpy())


def test_dan_target_epsilon_normalizes_the_target_rows_with_its_own_epsilon():
    # The original's target rows add 1e-9 to the source variance, its source rows ~1e-5.
    # Channel 0's source variance (~1e-8) is below 1e-5, so the two epsilons differ by a
    # factor ~30 in the target rows' scale there.
    x = _data()
    x[:NUM_SOURCE, ..., 0] = np.random.default_rng(5).normal(size=SHAPE[1:3]) * 1e-4
    gamma, beta = _params(SHAPE[-1])
    weights = _data(seed=4)
    dan = _dan(x, gamma, beta, target_epsilon=1e-9)
    y, gx, gg, gb = _grads(dan, x, weights, num_source=NUM_SOURCE)

    # Reference in float64: y_s with eps = 1e-5, y_t with the stopped source statistics + 1e-9.
    x64, w64 = tf.constant(x, tf.float64), tf.constant(weights, tf.float64)
    g64, b64 = tf.constant(gamma, tf.float64), tf.constant(beta, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch([x64, g64, b64])
        mean, var = tf.nn.moments(x64[:NUM_SOURCE], axes=[0, 1, 2])
        y_s = g64 * (x64[:NUM_SOURCE] - mean) / tf.sqrt(var + EPS) + b64
        mean, var = tf.stop_gradient(mean), tf.stop_gradient(var)
        y_t = g64 * (x64[NUM_SOURCE:] - mean) / tf.sqrt(var + 1e-9) + b64
        y_ref = tf.concat([y_s, y_t], 0)
        loss = tf.reduce_sum(y_ref * w64)
    refs = [y_ref.numpy(), *(t.numpy() for t in tape.gradient(loss, [x64, g64, b64]))]
    # float32 against float64: reductions over <= 210 terms, values up to ~1e5 in channel 0.
    for got, ref, name in zip((y, gx, gg, gb), refs, ("y", "dx", "dgamma", "dbeta"), strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4, err_msg=name)
    # The default (1e-5 for both) gives a different target output: the flag is not a no-op.
    default = _dan(x, gamma, beta)
    y_default = default(x, training=True, num_source=NUM_SOURCE).numpy()
    np.testing.assert_allclose(y_default[:NUM_SOURCE], y[:NUM_SOURCE], rtol=1e-6, atol=1e-6)
    assert np.abs(y_default[NUM_SOURCE:, ..., 0] - y[NUM_SOURCE:, ..., 0]).max() > 1.0
    # Inference uses `epsilon` for every sample (both layers saw the same source statistics).
    np.testing.assert_array_equal(dan(x, training=False), default(x, training=False))


def test_dan_moving_statistics_independent_of_target_content():
    x = _data()
    gamma, beta = _params(SHAPE[-1])
    other = x.copy()
    other[NUM_SOURCE:] = _data(seed=9)[NUM_SOURCE:] * 1e3
    a, b = _dan(x, gamma, beta), _dan(x, gamma, beta)
    with layers.domain_split(NUM_SOURCE):  # the split set in one place, as a model would
        for _ in range(2):
            a(x, training=True)
            b(other, training=True)
    np.testing.assert_array_equal(a.moving_mean.numpy(), b.moving_mean.numpy())
    np.testing.assert_array_equal(a.moving_variance.numpy(), b.moving_variance.numpy())
    # The momentum of the original: moving = 0.96 moving + 0.04 batch, twice from (0, 1).
    mean = x[:NUM_SOURCE].mean(axis=(0, 1, 2))
    np.testing.assert_allclose(a.moving_mean.numpy(), mean * (1 - MOMENTUM**2), rtol=1e-5)


def test_dan_target_loss_has_no_gradient_to_source_inputs():
    x = tf.constant(_data())
    gamma, beta = _params(SHAPE[-1])
    dan = _dan(x, gamma, beta)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dan(x, training=True, num_source=NUM_SOURCE)
        loss = tf.reduce_sum(tf.square(y[NUM_SOURCE:]) * _data(seed=3)[NUM_SOURCE:])
    gx, gg, gb = tape.gradient(loss, [x, dan.gamma, dan.beta])
    np.testing.assert_array_equal(gx.numpy()[:NUM_SOURCE], 0.0)
    assert np.all(np.abs(gx.numpy()[NUM_SOURCE:]).sum(axis=(1, 2)) > 0)
    assert np.all(np.abs(gg.numpy()) > 0) and np.all(np.abs(gb.numpy()) > 0)
    # A loss of the source outputs does reach the source inputs (through the statistics too).
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(dan(x, training=True, num_source=NUM_SOURCE)[:NUM_SOURCE] ** 3)
    gx = tape.gradient(loss, x).numpy()
    assert np.all(np.abs(gx[:NUM_SOURCE]).sum(axis=(1, 2)) > 0)
    np.testing.assert_array_equal(gx[NUM_SOURCE:], 0.0)


@pytest.mark.parametrize(
    "cls", [layers.DomainAgnosticNormalization, layers.SplitBatchNormalization]
)
def test_inference_applies_one_transform_to_every_sample(cls):
    x = _data()
    gamma, beta = _params(SHAPE[-1])
    layer = _built(cls(), x, gamma, beta)
    layer(x * 2.0 + 1.0, training=True, num_source=NUM_SOURCE)  # move the statistics
    mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    expected = _np_normalize(x, mean, var, gamma, beta)
    for num_source in (None, 0, 1, NUM_SOURCE, SHAPE[0]):
        y = layer(x, training=False, num_source=num_source)
        np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)


def test_split_batch_norm_per_part_statistics_and_sequential_moving_updates():
    x = _data()
    x[NUM_SOURCE:] = x[NUM_SOURCE:] * 4.0 - 3.0
    gamma, beta = _params(SHAPE[-1])
    layer = _built(layers.SplitBatchNormalization(), x, gamma, beta)
    weights = _data(seed=5)
    y, gx, gg, gb = _grads(layer, x, weights, num_source=NUM_SOURCE)
    xs, xt = x[:NUM_SOURCE].astype(np.float64), x[NUM_SOURCE:].astype(np.float64)
    ms, vs = xs.mean(axis=(0, 1, 2)), xs.var(axis=(0, 1, 2))
    mt, vt = xt.mean(axis=(0, 1, 2)), xt.var(axis=(0, 1, 2))
    np.testing.assert_allclose(y[:NUM_SOURCE], _np_normalize(xs, ms, vs, gamma, beta), atol=1e-5)
    np.testing.assert_allclose(y[NUM_SOURCE:], _np_normalize(xt, mt, vt, gamma, beta), atol=1e-5)
    # Shared gamma/beta: their gradients are the sums of two per-part BN gradients.
    gamma_grad = sum(
        (_grads(_bn(part, gamma, beta), part, w)[2])
        for part, w in (
            (x[:NUM_SOURCE], weights[:NUM_SOURCE]),
            (x[NUM_SOURCE:], weights[NUM_SOURCE:]),
        )
    )
    np.testing.assert_allclose(gg, gamma_grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, weights.sum(axis=(0, 1, 2)), rtol=1e-5)
    # Moving statistics: a source update followed by a target update.
    m = MOMENTUM
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), m * (1 - m) * ms + (1 - m) * mt, atol=1e-5
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), m * (m + (1 - m) * vs) + (1 - m) * vt, rtol=1e-5
    )


def test_get_normalization_names_and_instance_reference():
    x = _data()
    by_name = {name: layers.get_normalization(name) for name in layers.NORMALIZATIONS}
    assert isinstance(by_name["none"], keras.layers.Identity)
    assert type(by_name["batch"]) is keras.layers.BatchNormalization
    assert by_name["batch"].momentum == MOMENTUM and by_name["batch"].epsilon == EPS
    assert isinstance(by_name["dan"], layers.DomainAgnosticNormalization)
    assert isinstance(by_name["split_batch"], layers.SplitBatchNormalization)
    np.testing.assert_array_equal(by_name["none"](x), x)
    # Instance normalization: per image, per channel over (H, W), same in training and inference.
    inst = by_name["instance"]
    expected = _np_normalize(
        x, x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True), 1.0, 0.0
    )
    np.testing.assert_allclose(inst(x, training=True), expected, atol=1e-4)
    np.testing.assert_allclose(inst(x, training=False), expected, atol=1e-4)
    dan = layers.get_normalization("dan", center=True, scale=False, epsilon=1e-3, name="s_norm")
    assert dan.name == "s_norm" and not dan.scale and dan.epsilon == 1e-3


@pytest.mark.parametrize("policy,tol", [("mixed_float16", 2e-2), ("mixed_bfloat16", 1e-1)])
@pytest.mark.parametrize(
    "cls", [layers.DomainAgnosticNormalization, layers.SplitBatchNormalization]
)
def test_mixed_precision(policy, tol, cls):
    x = _data()
    gamma, beta = _params(SHAPE[-1])
    ref = _built(cls(), x, gamma, beta)
    y_ref = ref(x, training=True, num_source=NUM_SOURCE).numpy()
    layer = _built(cls(dtype=policy), x, gamma, beta)
    x_low = tf.cast(x, layer.compute_dtype)
    y = layer(x_low, training=True, num_source=NUM_SOURCE)
    assert y.dtype == layer.compute_dtype != "float32"
    for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance):
        assert v.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, "float32"), y_ref, atol=tol, rtol=tol)
    # Statistics in float32: the moving statistics follow the float32 run closely.
    np.testing.assert_allclose(layer.moving_mean, ref.moving_mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(layer.moving_variance, ref.moving_variance, rtol=tol, atol=tol)
    y_inf = layer(x_low, training=False)
    assert y_inf.dtype == layer.compute_dtype


@pytest.mark.parametrize(
    "cls", [layers.DomainAgnosticNormalization, layers.SplitBatchNormalization]
)
def test_synchronized_mirrored_strategy_equals_single_device(cls, mirrored_strategy):
    per_replica, ns = 4, 2
    x = _data(shape=(2 * per_replica, 5, 7, 4))
    x[[2, 3, 6, 7]] = x[[2, 3, 6, 7]] * 3.0 + 2.0  # the target samples look different
    weights = _data(seed=4, shape=x.shape)
    gamma, beta = _params(4)
    # Global batch as the replicas see it: [src_0; tgt_0 | src_1; tgt_1].
    # Single-device reference: all source samples first, [src_0; src_1; tgt_0; tgt_1].
    order = np.array([0, 1, 4, 5, 2, 3, 6, 7])
    inverse = np.argsort(order)

    ref = _built(cls(), x, gamma, beta)
    ref_out = _grads(ref, x[order], weights[order], num_source=2 * ns)
    y_ref, gx_ref = ref_out[0][inverse], ref_out[1][inverse]

    strategy = mirrored_strategy
    with strategy.scope():
        layer = _built(cls(synchronized=True), x, gamma, beta)

    def replica_fn(x_r, w_r):
        return _grads_graph(layer, x_r, w_r, ns)

    @tf.function
    def run(dist_x, dist_w):
        return strategy.run(replica_fn, args=(dist_x, dist_w))

    def part(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                array[ctx.replica_id_in_sync_group * per_replica :][:per_replica]
            )
        )

    y, gx, gg, gb = run(part(x), part(weights))
    local = lambda v: np.concatenate([t.numpy() for t in strategy.experimental_local_results(v)])
    np.testing.assert_allclose(local(y), y_ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(local(gx), gx_ref, atol=1e-4, rtol=1e-4)
    # Parameter gradients: the replicas' gradients add up to the single-device gradient.
    for ours, theirs in ((gg, ref_out[2]), (gb, ref_out[3])):
        total = sum(t.numpy() for t in strategy.experimental_local_results(ours))
        np.testing.assert_allclose(total, theirs, atol=1e-4, rtol=1e-4)
    for var, ref_var in (
        (layer.moving_mean, ref.moving_mean),
        (layer.moving_variance, ref.moving_variance),
    ):
        for replica_value in strategy.experimental_local_results(var.value):
            np.testing.assert_allclose(replica_value.numpy(), ref_var.numpy(), atol=1e-5, rtol=1e-5)


def _grads_graph(layer, x, weights, num_source):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True, num_source=num_source)
        loss = tf.reduce_sum(y * weights)
    gx, gg, gb = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
    return y, gx, gg, gb


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize(
    "cls", [layers.DomainAgnosticNormalization, layers.SplitBatchNormalization]
)
def test_tf_function_and_xla_match_eager(cls, jit_compile):
    x = _data()
    gamma, beta = _params(SHAPE[-1])
    weights = tf.constant(_data(seed=5))
    eager = _built(cls(), x, gamma, beta)
    compiled = _built(cls(), x, gamma, beta)
    expected = _grads(eager, x, weights, num_source=NUM_SOURCE)

    @tf.function(jit_compile=jit_compile)
    def step(x):
        return _grads_graph(compiled, x, weights, NUM_SOURCE)

    got = step(tf.constant(x))
    for ours, ref in zip(got, expected, strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(compiled.moving_mean, eager.moving_mean, atol=1e-6)
    np.testing.assert_allclose(compiled.moving_variance, eager.moving_variance, atol=1e-6)


@pytest.mark.parametrize(
    "cls", [layers.DomainAgnosticNormalization, layers.SplitBatchNormalization]
)
def test_serialization_round_trip(cls, tmp_path):
    x = _data()
    inputs = keras.Input(SHAPE[1:])
    extra = {"target_epsilon": 1e-9} if cls is layers.DomainAgnosticNormalization else {}
    layer = cls(momentum=0.9, epsilon=1e-4, center=False, name="norm", **extra)
    model = keras.Model(inputs, layer(inputs))
    layer(x, training=True, num_source=NUM_SOURCE)
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    assert (clone.momentum, clone.epsilon, clone.center) == (0.9, 1e-4, False)
    assert getattr(clone, "target_epsilon", None) == extra.get("target_epsilon")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("norm")) is cls
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    np.testing.assert_array_equal(loaded.get_layer("norm").moving_mean, layer.moving_mean)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: layers.get_normalization("bn"), r"`norm` must be one of .* Received: norm='bn'"),
        (lambda: layers.DomainAgnosticNormalization(momentum=1.5), r"momentum=1\.5"),
        (lambda: layers.SplitBatchNormalization(momentum="x"), r"momentum='x'"),
        (lambda: layers.DomainAgnosticNormalization(axis=[1, 2]), r"axis=\[1, 2\]"),
        (lambda: layers.DomainAgnosticNormalization(epsilon=0), r"epsilon=0"),
        (lambda: layers.DomainAgnosticNormalization(target_epsilon=0), r"target_epsilon=0"),
        (lambda: layers.DomainAgnosticNormalization()(_data(), num_source=-1), r"num_source=-1"),
        (lambda: layers.DomainAgnosticNormalization()(_data(), num_source=7), r"num_source=7"),
        (lambda: layers.DomainAgnosticNormalization()(_data(), num_source=1.5), r"num_source=1\.5"),
        (lambda: layers.DomainAgnosticNormalization(axis=4)(_data()), r"axis=4"),
        (lambda: layers.DomainAgnosticNormalization(axis=0)(_data()), r"axis=0"),
        (
            lambda: layers.DomainAgnosticNormalization()(_data(), training=True, num_source=0),
            r"num_source=0",
        ),
    ],
)
def test_bad_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_domain_split_context_nests_and_validates():
    assert layers.current_num_source() is None
    with layers.domain_split(2):
        with layers.domain_split(3):
            assert layers.current_num_source() == 3
        assert layers.current_num_source() == 2
    assert layers.current_num_source() is None
    with pytest.raises(ValueError, match=r"num_source=-2"):
        with layers.domain_split(-2):
            pass


def test_channels_first_axis_matches_keras_batch_norm():
    x = np.moveaxis(_data(), -1, 1)  # N, C, H, W
    gamma, beta = _params(x.shape[1])
    dan = _built(layers.DomainAgnosticNormalization(axis=1), x, gamma, beta)
    bn = _built(
        keras.layers.BatchNormalization(axis=1, momentum=MOMENTUM, epsilon=EPS), x, gamma, beta
    )
    weights = np.moveaxis(_data(seed=5), -1, 1)
    for ours, ref in zip(_grads(dan, x, weights), _grads(bn, x, weights), strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(dan.moving_variance, bn.moving_variance, atol=1e-6)
