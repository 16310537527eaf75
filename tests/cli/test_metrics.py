"""IoU metrics against hand-computed values, Keras MeanIoU and cityscapesscripts."""

import keras
import numpy as np
import pytest
from PIL import Image

from uada import metrics
from uada.data.labels import CLASS_NAMES


def cityscapes_scores(label_maps, prediction_maps, folder):
    """cityscapesscripts' per-class IoU and mean of train-id maps (written as label-id PNGs)."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evaluation
    from cityscapesscripts.helpers.labels import trainId2label

    to_label_id = np.zeros(256, np.uint8)  # 255 -> 0 ("unlabeled", ignored in evaluation)
    for train_id in range(19):
        to_label_id[train_id] = trainId2label[train_id].id
    predictions, ground_truths = [], []
    for i, (label_map, prediction) in enumerate(zip(label_maps, prediction_maps, strict=True)):
        gt_file = folder / f"frame{i}_gtFine_labelIds.png"
        prediction_file = folder / f"frame{i}_prediction.png"
        Image.fromarray(to_label_id[np.asarray(label_map, np.uint8)]).save(gt_file)
        Image.fromarray(to_label_id[np.asarray(prediction, np.uint8)]).save(prediction_file)
        ground_truths.append(str(gt_file))
        predictions.append(str(prediction_file))
    args = evaluation.args
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    result = evaluation.evaluateImgLists(predictions, ground_truths, args)
    return result["classScores"], result["averageScoreClasses"]


def random_maps(rng, count, shape, absent=(9, 16)):
    """Label maps with ignored pixels and some absent classes, and noisy predictions of them."""
    present = [c for c in range(19) if c not in absent]
    labels = rng.choice(present, size=(count, *shape)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.15] = 255
    predictions = np.where(
        rng.random(labels.shape) < 0.6, labels, rng.choice(present, size=labels.shape)
    )
    predictions = np.where(predictions == 255, 0, predictions).astype(np.uint8)
    return labels, predictions


def test_hand_computed_confusion_matrix_and_both_conventions():
    labels = np.array([[0, 0, 1, 255], [1, 1, 2, 255]])
    predictions = np.array([[0, 1, 1, 2], [1, 0, 2, 0]])  # the ignored pixels predict 2 and 0
    matrix = metrics.ConfusionMatrix(num_classes=4, class_names=("a", "b", "c", "d"))
    matrix.update(labels[None], predictions[None])
    np.testing.assert_array_equal(
        matrix.matrix, [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    )
    result = matrix.result()
    # a: TP 1, FP 1, FN 1 -> 1/3; b: TP 2, FP 1, FN 1 -> 1/2; c: 1/1; d: absent.
    assert result["per_class"] == pytest.approx({"a": 1 / 3, "b": 1 / 2, "c": 1.0, "d": None})
    assert result["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)
    assert result["miou_19"] == pytest.approx((1 / 3 + 1 / 2 + 1 + 0) / 4)
    assert result["num_images"] == 1


def test_matches_keras_mean_iou():
    labels, predictions = random_maps(np.random.default_rng(0), 3, (20, 30))
    matrix = metrics.ConfusionMatrix()
    for label_map, prediction in zip(labels, predictions, strict=True):
        matrix.update(label_map, prediction)
    reference = keras.metrics.MeanIoU(num_classes=19, ignore_class=255)
    reference.update_state(labels, predictions)
    assert matrix.result()["miou"] == pytest.approx(float(reference.result()), abs=1e-6)
    assert matrix.result()["num_images"] == 3


def test_matches_cityscapesscripts(tmp_path):
    labels, predictions = random_maps(np.random.default_rng(1), 3, (24, 40))
    matrix = metrics.ConfusionMatrix()
    matrix.update(labels, predictions)
    result = matrix.result()
    class_scores, average = cityscapes_scores(labels, predictions, tmp_path)
    for name in CLASS_NAMES:
        expected = class_scores[name]
        if np.isnan(expected):
            assert result["per_class"][name] is None, name
        else:
            assert result["per_class"][name] == pytest.approx(expected, abs=1e-12), name
    assert result["miou"] == pytest.approx(average, abs=1e-12)
    # The original convention counts the two absent classes as 0.
    assert result["miou_19"] == pytest.approx(average * 17 / 19, abs=1e-12)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match=r"Ground-truth values .* Received: \[19\]"):
        metrics.confusion_matrix(np.array([19]), np.array([0]))
    with pytest.raises(ValueError, match=r"Predicted values .* Received: \[-1\]"):
        metrics.confusion_matrix(np.array([0]), np.array([-1]))


def test_markdown_table_rows_and_absent_classes():
    matrix = metrics.ConfusionMatrix()
    matrix.update(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    table = metrics.markdown_table({"cityscapes": matrix.result()}).splitlines()
    assert table[0].startswith("| domain | images | mIoU | mIoU-19 | road |")
    assert table[2].startswith("| cityscapes | 1 | 100.0 | 5.3 | 100.0 | - |")
