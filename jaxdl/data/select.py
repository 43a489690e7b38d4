"""Carve smaller problems out of a data set: a class subset, a fraction of the labels, extra training data.

    data.classes=[5,6,7,8,9]  data.label_fraction=0.01  data.extra_train_dirs=[runs/gan/synthetic]
    data.train_subset=500   (a stratified number of training examples, for quick runs)

Classes are renumbered 0..k-1 in the order given, so a model trained on classes 5-9
has a 5-way head. The label fraction is stratified and applies to train and
validation (both hold labels); test stays whole. Extra training examples
(e.g. synthetic images written by `jaxdl-gan-sample`) go through the same class
filter but never count towards the label fraction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from jaxdl.data import idx
from jaxdl.data.base import Dataset, Split, stratified_holdout
from jaxdl.errors import DataError

# Keys of conf/data/*.yaml handled here, after the source has loaded the full data set.
SELECTION_KEYS = ("classes", "label_fraction", "label_seed", "extra_train_dirs", "train_subset")


def select_classes(split: Split, classes: Sequence[int]) -> Split:
    """The examples of `classes`, relabelled 0..len(classes)-1 in that order."""
    lookup = np.full(int(max(max(classes), split.labels.max(initial=0))) + 1, -1, np.int32)
    lookup[list(classes)] = np.arange(len(classes), dtype=np.int32)
    keep = np.flatnonzero(lookup[split.labels] >= 0)
    return dataclasses.replace(split.subset(keep), labels=lookup[split.labels[keep]])


def label_fraction(split: Split, fraction: float, seed: int) -> Split:
    """A stratified `fraction` of `split`, at least one example of every class."""
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"data.label_fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return split
    _, kept = stratified_holdout(split.labels, fraction, seed)  # the 'held out' part is the kept fraction
    present = np.unique(split.labels)
    missing = np.setdiff1d(present, split.labels[kept])
    first_of_missing = [np.flatnonzero(split.labels == c)[0] for c in missing]
    return split.subset(np.sort(np.concatenate([kept, first_of_missing]).astype(np.int64)))


def train_subset(split: Split, size: int, seed: int) -> Split:
    """A stratified `size` examples of the training split (quick runs, small-data studies)."""
    if not 0 < size <= len(split):
        raise DataError(f"data.train_subset must be between 1 and the {len(split)} training examples, got {size}")
    _, keep = stratified_holdout(split.labels, size / len(split), seed)
    return split.subset(keep)


def read_extra_train(dirs: Sequence[str], image_shape: tuple[int, ...]) -> Split | None:
    """The `train-*` IDX pairs of `dirs` concatenated, checked against the data set's image shape."""
    splits = []
    for directory in dirs:
        split = idx.read_pair(Path(str(directory)).expanduser(), "train")
        if split.images.shape[1:] != tuple(image_shape) or split.images.dtype != np.uint8:
            raise DataError(
                f"extra training images in {directory} are {split.images.shape[1:]}, "
                f"the data set's are {tuple(image_shape)}; generate them at the data set's size"
            )
        splits.append(split)
    if not splits:
        return None
    return Split(np.concatenate([s.images for s in splits]), np.concatenate([s.labels for s in splits]))


def apply_selection(dataset: Dataset, cfg: Mapping[str, Any]) -> Dataset:
    """The data set restricted as `data.classes` / `data.label_fraction` / `data.extra_train_dirs` say."""
    classes = cfg.get("classes")
    fraction = float(1.0 if cfg.get("label_fraction") is None else cfg["label_fraction"])
    seed = int(cfg.get("label_seed") or 0)
    extra = read_extra_train(cfg.get("extra_train_dirs") or [], dataset.image_shape)
    if cfg.get("train_subset") is not None:
        dataset = dataclasses.replace(dataset, train=train_subset(dataset.train, int(cfg["train_subset"]), seed))
    if classes is None and fraction == 1.0 and extra is None:
        return dataset
    train, val, test, names = dataset.train, dataset.val, dataset.test, dataset.class_names
    if classes is not None:
        classes = [int(c) for c in classes]
        bad = [c for c in classes if not 0 <= c < dataset.num_classes]
        if bad or len(set(classes)) != len(classes) or not classes:
            raise DataError(f"data.classes must be distinct class indices in 0..{dataset.num_classes - 1}, got {classes}")
        train, val, test = (select_classes(s, classes) for s in (train, val, test))
        extra = select_classes(extra, classes) if extra is not None else None
        names = tuple(names[c] for c in classes)
    train, val = label_fraction(train, fraction, seed), label_fraction(val, fraction, seed + 1)
    if extra is not None:
        if not isinstance(train, Split):
            raise DataError("data.extra_train_dirs needs an in-memory data set; this one is streamed from files")
        if extra.labels.max(initial=0) >= len(names):
            raise DataError(f"extra training labels go up to {extra.labels.max()} but the data set has {len(names)} classes")
        train = Split(np.concatenate([train.images, extra.images]), np.concatenate([train.labels, extra.labels]))
    return dataclasses.replace(dataset, train=train, val=val, test=test, class_names=names)
