"""`ImagePreprocessing`: the input preprocessing of a backbone's weights, as a layer."""

import keras

PREPROCESSING_MODES = ("caffe", "tf", "torch")


@keras.saving.register_keras_serializable(package="uada")
class ImagePreprocessing(keras.layers.Layer):
    """Maps RGB images with values in [0, 255] to the input a pretrained backbone expects.

    Keras Applications' `preprocess_input` as a layer, so that a saved or exported model takes raw
    images. For the Keras ResNet-50 ImageNet weights the mode is `"caffe"`:

        y = x[..., ::-1] - [103.939, 116.779, 123.68]        (RGB -> BGR, minus the ImageNet mean)

    Args:
        mode: one of `"caffe"` (ResNet-50 v1), `"tf"` (`x / 127.5 - 1`) or `"torch"`
            (`(x / 255 - mean) / std`). Defaults to `"caffe"`.
        **kwargs: base layer arguments (`name`, `dtype`).

    Call arguments:
        inputs: float images `[N, H, W, 3]`, RGB, values in [0, 255].
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(
                f"`mode` must be one of {PREPROCESSING_MODES}. Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, inputs):
        return keras.applications.imagenet_utils.preprocess_input(
            inputs, data_format="channels_last", mode=self.mode
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
