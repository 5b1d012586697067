"""Train the usual Keras tutorial CNN on a dataset and let steadyval analyse its run per image.

A user's own Keras training, recorded with ``steadyval.integrations.keras.SteadyvalCallback``:
every val image's probability at every epoch, with the image's path, patient and metadata, so
that ``steadyval analyze`` can test each epoch-to-epoch jump on the same images, measure churn
and say which images and subgroups drive the swings in val loss. steadyval only loads the
images here (its decoded cache and split); the model, the training and the augmentation are
plain Keras (the seed's Ex. 2: Conv32-Pool-Conv64-Pool-Flatten-Dropout(0.5)-Dense).

Needs keras (``pip install keras``; it runs on the TensorFlow, JAX or torch backend, e.g.
``KERAS_BACKEND=torch``).

    python examples/keras_record.py DATA --out runs/keras [--size 64] [--epochs 15]
    steadyval analyze runs/keras --report runs/keras-report
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

from steadyval.curves import analyze_history, read_log
from steadyval.data import load_dataset
from steadyval.integrations.keras import SteadyvalCallback


def tutorial_cnn(shape: tuple[int, int, int]) -> keras.Model:
    """The seed's Ex. 2 model, as Keras tutorials write it."""
    return keras.Sequential([
        keras.Input(shape), keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(1, activation="sigmoid"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = load_dataset(args.data, image_size=args.size)
    train, val = ds.split_index("train"), ds.split_index("val")
    x = ds.images.transpose(0, 2, 3, 1).astype("float32")  # NHWC, 0-255 (the model rescales)
    y = ds.labels.astype("float32")
    rows = ds.records.iloc[val]
    print(f"{len(train)} train / {len(val)} val images at {args.size} px; positive class '{ds.positive}'"
          + (" (split made by steadyval, stratified and grouped by patient)" if ds.split_generated else ""))

    keras.utils.set_random_seed(args.seed)
    model = tutorial_cnn(x.shape[1:])
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    record = SteadyvalCallback(args.out, (x[val], y[val]), paths=list(rows["path"]), groups=list(rows["group"]),
                               metadata=rows[ds.metadata] if ds.metadata else None,
                               class_names=(ds.classes[0], ds.classes[1]))
    model.fit(x[train], y[train], validation_data=(x[val], y[val]), epochs=args.epochs, batch_size=32,
              callbacks=[record], verbose=2)

    result = analyze_history(read_log(args.out))
    summary = result.summary
    print(f"\nsteadyval analyze {args.out}:")
    for key in ("val_loss_volatility", "jumps_beyond_noise", "accuracy_drops_beyond_noise", "churn"):
        if key in summary:
            print(f"  {key:28s} {summary[key]:.3f}")
    for f in result.findings:
        print(f"  [{f.severity.value}] {f.id}: {f.title}")
    if result.attribution:
        top = result.attribution["top_images"][:3]
        print("  val images moving val loss most: " + ", ".join(f"{t['path']} ({t['swing_share']:.1%})" for t in top))
    print(f"\nFull report: steadyval analyze {args.out} --report {args.out}-report")


if __name__ == "__main__":
    main()
