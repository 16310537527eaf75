"""A `Config` as command-line flags: one flag per field, its rules, and flagfiles.

`define_train_flags` defines the flags of `python -m uada.train` (re-exported by `uada.flags`,
the module of every command's flags): one flag per `uada.config.Config` field, generated from
the field (`define_config_flag`: same name, default, description; the closed set of names of its
metadata's `enum`; its bounds), plus `--workdir`; cross-flag rules are validators, so a bad value
or combination stops the command before anything runs, with a message naming the flag(s) and
echoing the value. `train_config` turns the parsed flags into the frozen `Config`, and
`expand_flagfiles` reads experiment files from any directory. It sits just above `uada.config`,
so that every package that turns an experiment file into a `Config` (e.g.
`uada.runs.table_runs`) can.
"""

import dataclasses
import os
import typing

from absl import flags

from uada import config as config_lib
from uada.names import DATASET_CARD

_FIELD_DEFAULT = object()  # `define_config_flag`: the field's own default
_DEMO_DATASETS = tuple(name for name in config_lib.DATASETS if name.startswith("demo_"))


def define_train_flags(flag_values=flags.FLAGS, *, module_name=None):
    """Defines the training flags and their validators on `flag_values`.

    One flag per `Config` field, generated from the field (`define_config_flag`), plus
    `--workdir`; the cross-flag rules are validators. `module_name`: the module `--helpfull`
    lists the flags under (default: this one).
    """
    fv = flag_values
    flags.DEFINE_string(
        "workdir",
        None,
        "Directory of the run: checkpoints, logs, config, results. Default: workdirs/<name> for "
        "--flagfile=.../<name>.flags.",
        flag_values=fv,
        module_name=module_name,
    )
    for field in dataclasses.fields(config_lib.Config):
        define_config_flag(field, flag_values=fv, module_name=module_name)
    _register_train_validators(fv)


def define_config_flag(field, *, name=None, default=_FIELD_DEFAULT, flag_values=flags.FLAGS,
                       module_name=None):  # fmt: skip
    """Defines the flag of the `Config` field `field` from its type, default and metadata.

    | field | flag |
    |---|---|
    | metadata `enum` | `DEFINE_enum` over the names (numbers as text, e.g. `--output_stride`) |
    | metadata `domain` | a string or list validated by `register_domains_validator` |
    | `str`, `bool` | `DEFINE_string`, `DEFINE_boolean` |
    | `int`, `float` | `DEFINE_integer`, `DEFINE_float` with the metadata's bounds |
    | `tuple[...]` | `DEFINE_list` (comma-separated) |

    Args:
        field: a `dataclasses.Field` of `Config`.
        name: the flag's name; default: the field's.
        default: the flag's default; default: the field's.
        flag_values: where to define it.
        module_name: the module `--helpfull` lists the flag under (default: the caller's).
    """
    options = dict(field.metadata)
    help_text = options.pop("help")
    enum = options.pop("enum", None)
    domain = options.pop("domain", False)
    name = name or field.name
    default = field.default if default is _FIELD_DEFAULT else default
    kwargs = {"flag_values": flag_values, "module_name": module_name}
    if enum is not None:
        text = None if default is None else str(default)
        flags.DEFINE_enum(name, text, [str(v) for v in enum], help_text, **kwargs)
    elif field.type is bool:
        flags.DEFINE_boolean(name, default, help_text, **kwargs)
    elif field.type is str:
        flags.DEFINE_string(name, default, help_text, **kwargs)
    elif field.type in (int, float):
        define = flags.DEFINE_integer if field.type is int else flags.DEFINE_float
        define(name, default, help_text, **options, **kwargs)
    else:  # tuple[element type, ...]
        flags.DEFINE_list(name, [str(v) for v in default], help_text, **kwargs)
    if domain:
        register_domains_validator(name, flag_values)


def _register_train_validators(fv):
    def valid_image_size(value):
        try:
            height, width = (int(v) for v in value)
        except ValueError:
            return False
        return height > 0 and width > 0

    flags.register_validator(
        "image_size",
        valid_image_size,
        message="--image_size must be two positive integers 'height,width', e.g. 384,768.",
        flag_values=fv,
    )
    register_names_validator("demo_shift", config_lib.SHIFT_NAMES, fv, required=True)

    def decay_epochs(value):
        try:
            epochs = [float(v) for v in value]
        except ValueError:
            return False
        return all(e >= 0 for e in epochs) and all(
            b > a for a, b in zip(epochs, epochs[1:], strict=False)
        )

    flags.register_validator(
        "lr_decay_epochs",
        decay_epochs,
        message="--lr_decay_epochs must be non-negative, increasing numbers, e.g. 9,16.",
        flag_values=fv,
    )
    flags.register_validator(
        "weights",
        lambda value: value in ("imagenet", "none") or os.path.exists(os.path.expanduser(value)),
        message="--weights must be 'imagenet', 'none' or the path of an existing weights file.",
        flag_values=fv,
    )

    def valid_gradient_clip(value):
        try:
            return value in ("auto", "none") or float(value) > 0
        except ValueError:
            return False

    flags.register_validator(
        "gradient_clip",
        valid_gradient_clip,
        message="--gradient_clip must be 'auto', 'none' or a positive number.",
        flag_values=fv,
    )

    def rule(names, check, message):
        flags.register_multi_flags_validator(
            names, lambda values: check(**values), message=message, flag_values=fv
        )

    rule(
        ["source", "target"],
        lambda source, target: source != target,
        "--source and --target must be different domains.",
    )
    rule(
        ["source", "target"],
        lambda source, target: not {source, target} & set(config_lib.EVAL_ONLY_DATASETS),
        f"{list(config_lib.EVAL_ONLY_DATASETS)} have no training split: use them in --unseen only.",
    )
    rule(
        ["source", "target", "unseen"],
        lambda source, target, unseen: (
            len({name in _DEMO_DATASETS for name in (source, target, *unseen)}) == 1
        ),
        f"The demo domains {list(_DEMO_DATASETS)} cannot be mixed with real datasets in "
        "--source, --target and --unseen.",
    )
    rule(
        ["backbone", "weights"],
        lambda backbone, weights: backbone == "resnet50" or weights != "imagenet",
        "--backbone=resnet_tiny has no ImageNet weights: use --weights=none or a weights file "
        "of resnet_tiny (e.g. written by python -m uada.pretrain).",
    )
    rule(
        ["image_size", "output_stride"],
        lambda image_size, output_stride: (
            not valid_image_size(image_size)
            or all(int(s) % int(output_stride) == 0 for s in image_size)
        ),
        "--image_size must be divisible by --output_stride.",
    )
    rule(
        ["train_steps", "epochs"],
        lambda train_steps, epochs: train_steps > 0 or epochs > 0,
        "One of --train_steps and --epochs must be positive.",
    )


def register_names_validator(name, names, flag_values, *, required=False):
    """Validates the list flag `--name`: each item one of `names`, and at least one if
    `required`; the message names the flag and lists `names`."""
    flags.register_validator(
        name,
        lambda value: (bool(value) or not required) and all(item in names for item in value),
        message=f"--{name} must be a comma-separated list of {list(names)}.",
        flag_values=flag_values,
    )


def is_domain(name):
    """Whether `name` names a domain: one of `DATASETS`, or a folder holding a dataset card."""
    path = os.path.join(os.path.expanduser(name), DATASET_CARD)
    return name in config_lib.DATASETS or os.path.isfile(path)


def register_domains_validator(name, flag_values):
    """Validates the domain flag `--name` (a string, or a list of them): each one of `DATASETS`
    or the path of a folder holding a dataset card (`is_domain`; the card itself is read when
    the domain is)."""
    flags.register_validator(
        name,
        lambda value: (
            value is None or all(map(is_domain, [value] if isinstance(value, str) else value))
        ),
        message=f"--{name} must name domains, each one of {list(config_lib.DATASETS)} or the path "
        f"of a folder holding a {DATASET_CARD}.",
        flag_values=flag_values,
    )


def train_config(flag_values=flags.FLAGS):
    """Returns the frozen `Config` of parsed training flags (every `Config` field by name)."""
    values = {}
    for field in dataclasses.fields(config_lib.Config):
        value = flag_values[field.name].value
        if typing.get_origin(field.type) is tuple:  # a list of text: tuple[element type, ...]
            value = tuple(typing.get_args(field.type)[0](v) for v in value)
        elif "enum" in field.metadata:  # names as text: back to the field's type
            value = field.type(value)
        values[field.name] = value
    return config_lib.Config(**values)


def expand_flagfiles(argv, root):
    """`argv` with each `--flagfile=PATH` replaced by the flag lines of PATH, recursively.

    What absl does with `--flagfile` (blank lines and `#` or `//` comment lines skipped, the other
    lines stripped), except where a relative path is resolved: a `--flagfile=` argument of `argv`
    against the current directory, a `--flagfile=` line inside a flagfile against `root` (for the
    experiment files: the folder that holds `experiments/`), so the files can be read from any
    directory without changing the process's directory.

    Raises:
        flags.CantOpenFlagFileError: a flagfile cannot be read, or includes itself; the message
            names it.
    """
    return _expand(argv, root, stack=())


def _expand(lines, root, *, stack, base=None):
    expanded = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if not line.startswith(("--flagfile=", "-flagfile=")):
            expanded.append(line)
            continue
        path = os.path.expanduser(line.split("=", 1)[1])
        if base is not None and not os.path.isabs(path):
            path = os.path.join(base, path)
        if path in stack:
            raise flags.CantOpenFlagFileError(f"Flagfile {path} includes itself: {stack}")
        try:
            with open(path) as f:
                text = f.read()
        except OSError as error:
            raise flags.CantOpenFlagFileError(
                f"Unable to open flagfile {path}: {error}. Received: {line}"
            ) from error
        expanded += _expand(text.splitlines(), root, stack=(*stack, path), base=root)
    return expanded
