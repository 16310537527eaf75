"""Prediction grids as in the paper's Figure 5 of two trained runs: image / ground truth /
source-only / adapted (`python -m uada.predict_grid`).

`predict_grid` takes the validation images `indices` (positions in the split's order) of any
domain, at the adapted run's input size (labels resized with nearest neighbour, as in the paper's
evaluation); both models predict them in inference mode (moving statistics, no domain input), and
`uada.analysis.figures.prediction_grid` draws them: labels and predictions in the run's palette
(the Cityscapes palette, or a folder source's card's), a legend of the classes present. The
format follows the extension of `output`.
"""

import os

import numpy as np

from uada.analysis import figures
from uada.data import domains as domains_lib
from uada.data import pipeline
from uada.runs import workdir as workdir_lib


def validation_images(config, domain, indices):
    """The validation images and labels `indices` of `domain` at `config`'s input size.

    Returns:
        `(images float32 [N, H, W, 3] in [0, 255], labels int32 [N, H, W])`.

    Raises:
        ValueError: an index is outside the split; the message gives the split's size.
    """
    indices = [int(i) for i in indices]
    domains_lib.ensure_demo(config)
    spec = domains_lib.get_domain(domain, config)
    dataset = pipeline.eval_dataset(
        domains_lib.load(spec, spec.eval_split, config).take(max(indices) + 1),
        batch_size=1,
        image_size=tuple(config.image_size),
    )
    examples = [(images[0].numpy(), labels[0].numpy()) for images, labels in dataset]
    bad = [i for i in indices if not 0 <= i < len(examples)]
    if bad:
        raise ValueError(
            f"`indices` must be positions in the {spec.eval_split} split of {domain} "
            f"({len(examples)} images). Received: indices={indices}"
        )
    images = np.stack([examples[i][0] for i in indices])
    labels = np.stack([examples[i][1] for i in indices])
    return images, labels


def predict_grid(source_only_workdir, adapted_workdir, domain, indices, output, *,
                 names=("source only", "adapted"), title=None):  # fmt: skip
    """Draws the prediction grid of two runs on validation images of `domain`.

    Args:
        source_only_workdir, adapted_workdir: run directories (the two prediction columns).
        domain: a domain name (`uada.config.DATASETS`) or a folder dataset's path, e.g. the
            target or an unseen domain (`uada.data.domains.get_domain` checks it).
        indices: positions of the images in the domain's validation split.
        output: the figure's path.
        names: the titles of the two prediction columns.
        title: optional figure title; default names the domain.

    Returns:
        `output`.
    """
    if not indices:
        raise ValueError(f"`indices` must name at least one image. Received: indices={indices!r}")
    configs = [workdir_lib.load_config(w) for w in (source_only_workdir, adapted_workdir)]
    if configs[0].image_size != configs[1].image_size:
        raise ValueError(
            "The two runs must have the same --image_size. Received: "
            f"{configs[0].image_size} ({source_only_workdir}) and {configs[1].image_size} "
            f"({adapted_workdir})"
        )
    if domains_lib.run_classes(configs[0]) != domains_lib.run_classes(configs[1]):
        raise ValueError(
            f"The two runs must predict the same classes. Received: {source_only_workdir} and "
            f"{adapted_workdir}, whose sources are {configs[0].source} and {configs[1].source}"
        )
    images, labels = validation_images(configs[1], domain, indices)
    predictions = {}
    for name, workdir, config in zip(
        names, (source_only_workdir, adapted_workdir), configs, strict=True
    ):
        model, _ = workdir_lib.load_model(config, workdir)
        predictions[name] = np.asarray(model.predict_labels(images))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    return figures.prediction_grid(
        images, labels, predictions, output, title=title or f"{domain} (validation)",
        classes=domains_lib.run_classes(configs[1]),
    )  # fmt: skip
