"""Side-by-side training speed: RecBole 1.2.1 (PyTorch, CPU) vs Cascade, same
machine, same run, same thread count, batch size and embedding size.

Never a runtime dependency of Cascade. Set up the peer once, outside the repo:

    python3 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install "torch<2.6" "numpy<2" pandas==2.2.3 \
        setuptools==69.5.1 recbole==1.2.1

then, from the repository root, with a release build of `cascade`:

    /tmp/recbole-venv/bin/python benches/recbole_side_by_side.py \
        --data ../shared/data/ml-100k-recbole --ml100k ../shared/data/ml-100k \
        --cascade target/release/cascade --epochs 3

It prints one JSON object: median train seconds per epoch of each library
and the ratio, per model. Every model RecBole has runs by default (BPR,
NeuMF, SASRec, LR, FM, Wide&Deep, DeepFM, DCNv2, DIN, DIEN); `--models`
picks some. For the slow ones `--epochs 1` is enough to compare.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# (cascade model, RecBole model, shared hyperparameters). Each entry sets
# RecBole to Cascade's defaults for that model (`cascade bench train`
# prints them as `settings`): batch size, embedding dimension, hidden
# layers, learning rate, sequence length and negatives.
CTR_DATA = {
    # ML100K-CTR's shape: label = rating >= 4, user and item features,
    # an 80/10/10 split. RecBole splits at random; the epoch's work (rows
    # per epoch, fields per row) is what the timing compares.
    "load_col": {
        "inter": ["user_id", "item_id", "rating", "timestamp"],
        "user": ["user_id", "age", "gender", "occupation"],
        "item": ["item_id", "release_year", "class"],
    },
    "threshold": {"rating": 4},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None, "mode": "labeled"},
}
SEQUENCE_CTR_DATA = {
    **CTR_DATA,
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": None, "mode": "labeled"},
    "MAX_ITEM_LIST_LENGTH": 50,
}


def ctr(learning_rate, batch=1024, **extra):
    return {
        **CTR_DATA,
        "train_batch_size": batch,
        "embedding_size": 16,
        "mlp_hidden_size": [64, 32],
        "learning_rate": learning_rate,
        **extra,
    }


MODELS = [
    ("bpr-mf", "BPR", {"train_batch_size": 2048, "embedding_size": 64, "learning_rate": 0.005}),
    (
        "neumf",
        "NeuMF",
        {
            "train_batch_size": 2048,
            "mf_embedding_size": 64,
            "mlp_embedding_size": 64,
            "mlp_hidden_size": [128, 64],
            "learning_rate": 0.002,
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 4},
        },
    ),
    (
        "sasrec",
        "SASRec",
        {
            "train_batch_size": 64,
            "hidden_size": 64,
            "inner_size": 256,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dropout_prob": 0.2,
            "attn_dropout_prob": 0.2,
            "MAX_ITEM_LIST_LENGTH": 50,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "learning_rate": 0.001,
        },
    ),
    ("lr", "LR", ctr(0.01)),
    ("fm", "FM", ctr(0.002)),
    ("wide-deep", "WideDeep", ctr(0.002)),
    ("deepfm", "DeepFM", ctr(0.002)),
    ("dcnv2", "DCNV2", ctr(0.002, cross_layer_num=2, mixed=False, structure="stacked")),
    (
        "din",
        "DIN",
        {**ctr(0.002), **SEQUENCE_CTR_DATA, "train_batch_size": 1024, "embedding_size": 16},
    ),
    (
        "dien",
        "DIEN",
        {**ctr(0.002, batch=512), **SEQUENCE_CTR_DATA, "train_batch_size": 512, "embedding_size": 16},
    ),
]


def prepare_atomic_files(source, workdir):
    """RecBole ignores data_path for `ml-100k`, so the copy is named ml100k;
    timestamps become their dense rank so RecBole's float32 cannot merge ties."""
    target = os.path.join(workdir, "ml100k")
    os.makedirs(target)
    for suffix in ("user", "item"):
        shutil.copy(os.path.join(source, f"ml-100k.{suffix}"), os.path.join(target, f"ml100k.{suffix}"))
    with open(os.path.join(source, "ml-100k.inter")) as f:
        header, *rows = f.read().splitlines()
    rows = [r.split("\t") for r in rows]
    ranks = {t: i for i, t in enumerate(sorted({int(float(r[3])) for r in rows}))}
    with open(os.path.join(target, "ml100k.inter"), "w") as f:
        f.write(header + "\n")
        for r in rows:
            f.write("\t".join(r[:3] + [str(ranks[int(float(r[3]))])]) + "\n")
    return workdir


def recbole_epoch_seconds(model_name, params, data_path, epochs, threads):
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer

    torch.set_num_threads(threads)
    config = Config(
        model=model_name,
        dataset="ml100k",
        config_dict={
            "data_path": data_path,
            "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
            "epochs": epochs,
            "show_progress": False,
            "device": "cpu",
            "use_gpu": False,
            **params,
        },
    )
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    seconds = []
    for epoch in range(epochs):
        started = time.perf_counter()
        trainer._train_epoch(train, epoch, show_progress=False)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def cascade_epoch_seconds(binary, model, data, epochs, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), CASCADE_DATA_DIR=data)
    with tempfile.TemporaryDirectory() as workspace:
        out = subprocess.run(
            [binary, "bench", "train", "--model", model, "--epochs", str(epochs), "--workspace", workspace],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
    return json.loads(out)["median_epoch_train_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="ml-100k-recbole directory")
    parser.add_argument("--ml100k", required=True, help="ml-100k directory (GroupLens format)")
    parser.add_argument("--cascade", required=True, help="path of a release `cascade` binary")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads and Cascade's rayon pool")
    parser.add_argument(
        "--models",
        default=",".join(m[0] for m in MODELS),
        help="comma-separated Cascade model names (default: every model RecBole has)",
    )
    args = parser.parse_args()
    data, ml100k, cascade = (os.path.abspath(p) for p in (args.data, args.ml100k, args.cascade))
    results = {"threads": args.threads, "epochs": args.epochs, "models": {}}
    with tempfile.TemporaryDirectory() as workdir:
        # RecBole writes log/, log_tensorboard/ and saved/ into the working
        # directory; keep them out of the repository.
        os.chdir(workdir)
        data_path = prepare_atomic_files(data, workdir)
        wanted = args.models.split(",")
        for cascade_model, recbole_model, params in MODELS:
            if cascade_model not in wanted:
                continue
            print(f"{cascade_model}: RecBole {recbole_model}", file=sys.stderr, flush=True)
            theirs = recbole_epoch_seconds(recbole_model, params, data_path, args.epochs, args.threads)
            print(f"{cascade_model}: Cascade", file=sys.stderr, flush=True)
            ours = cascade_epoch_seconds(cascade, cascade_model, ml100k, args.epochs, args.threads)
            results["models"][cascade_model] = {
                "recbole_s_per_epoch": theirs,
                "cascade_s_per_epoch": ours,
                "speedup": theirs / ours,
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
