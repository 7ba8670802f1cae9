"""Peers on the split Cascade writes, in the same run: implicit's ALS and a
NumPy EASE, each tuned on the validation item only and scored on test once,
under the LOO-FULL rules of PROTOCOLS.md (full ranking over every item,
train items masked, the validation item masked at test, ties to the lower
item index, items indexed in ascending numeric id order).

Never a runtime dependency of Cascade. Set up the peers once, outside the repo:

    python3 -m venv /tmp/peers-venv
    /tmp/peers-venv/bin/pip install numpy pandas pyarrow implicit

then, from the repository root, for a workspace Cascade imported:

    /tmp/peers-venv/bin/python benches/peers_side_by_side.py \
        --cascade target/release/cascade --config configs/amazon-toys.toml \
        --workspace /tmp/w-toys

It runs `cascade pipeline` (which writes `splits/loo_full.parquet`), reads
that file, and prints one JSON object: each peer's chosen setting, its
validation NDCG@10 and its test HR@10 / NDCG@10 / HR@20 / NDCG@20, with
wall seconds. `--models als,ease` picks some; `--ease-max-items` skips the
dense EASE above a catalogue size this machine cannot invert.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp


def read_split(cascade, config, workspace):
    path = os.path.join(workspace, "pipeline", "splits", "loo_full.parquet")
    command = [cascade, "pipeline", "--workspace", workspace]
    if config:
        command += ["--config", config]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    frame = pd.read_parquet(path)
    items = frame["item_id"].astype(str).unique()
    numeric = all(i.lstrip("-").isdigit() for i in items)
    items = sorted(items, key=(lambda i: (int(i), i)) if numeric else None)
    item_index = {item: k for k, item in enumerate(items)}
    users = sorted(frame["user_id"].astype(str).unique())
    user_index = {user: k for k, user in enumerate(users)}
    frame = frame.sort_values(["user_id", "pos"])
    u = frame["user_id"].astype(str).map(user_index).to_numpy()
    i = frame["item_id"].astype(str).map(item_index).to_numpy()
    part = frame["split"].to_numpy()
    train = part == "train"
    x = sp.csr_matrix(
        (np.ones(train.sum(), dtype=np.float32), (u[train], i[train])),
        shape=(len(users), len(items)),
    )
    x.data[:] = 1.0  # repeats count once, as in Cascade's interaction matrix
    valid = np.full(len(users), -1)
    test = np.full(len(users), -1)
    valid[u[part == "valid"]] = i[part == "valid"]
    test[u[part == "test"]] = i[part == "test"]
    return x.tocsr(), valid, test


def evaluate(score_batch, x, valid, test, stage, batch=512):
    """Mean HR/NDCG at 10 and 20 over users, by the protocol's rank rule."""
    n_users, n_items = x.shape
    totals = {"hr@10": 0.0, "ndcg@10": 0.0, "hr@20": 0.0, "ndcg@20": 0.0}
    for start in range(0, n_users, batch):
        rows = np.arange(start, min(start + batch, n_users))
        scores = np.asarray(score_batch(rows), dtype=np.float64)
        targets = (valid if stage == "valid" else test)[rows]
        mask = x[rows].toarray() > 0
        if stage == "test":
            mask[np.arange(len(rows)), valid[rows]] = True
        mask[np.arange(len(rows)), targets] = False
        scores[mask] = -np.inf
        target_scores = scores[np.arange(len(rows)), targets][:, None]
        index = np.arange(n_items)[None, :]
        ahead = (scores > target_scores) | ((scores == target_scores) & (index < targets[:, None]))
        rank = ahead.sum(axis=1)  # 0-based
        for k in (10, 20):
            hit = rank < k
            totals[f"hr@{k}"] += hit.sum()
            totals[f"ndcg@{k}"] += (hit / np.log2(rank + 2.0)).sum()
    return {name: value / n_users for name, value in totals.items()}


def ease(x, valid, test):
    gram = (x.T @ x).toarray().astype(np.float32)
    best = None
    for lam in [10.0, 50.0, 250.0, 1000.0]:
        p = gram.copy()
        p[np.diag_indices_from(p)] += lam
        p = np.linalg.inv(p)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        score = lambda rows, b=b: (x[rows] @ b)
        ndcg = evaluate(score, x, valid, test, "valid")["ndcg@10"]
        if best is None or ndcg > best[1]:
            best = (lam, ndcg, b)
        del p
    lam, valid_ndcg, b = best
    metrics = evaluate(lambda rows: x[rows] @ b, x, valid, test, "test")
    return {"setting": f"lambda={lam} (chosen on validation)", "valid_ndcg10": valid_ndcg, "test": metrics}


def als(x, valid, test, seed):
    from implicit.als import AlternatingLeastSquares

    best = None
    for factors in [64, 128]:
        for reg in [0.01, 0.1, 1.0]:
            model = AlternatingLeastSquares(
                factors=factors, regularization=reg, iterations=15, random_state=seed
            )
            model.fit(x, show_progress=False)
            users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
            score = lambda rows, u=users, v=items: u[rows] @ v.T
            ndcg = evaluate(score, x, valid, test, "valid")["ndcg@10"]
            if best is None or ndcg > best[1]:
                best = ((factors, reg), ndcg, users, items)
    (factors, reg), valid_ndcg, users, items = best
    metrics = evaluate(lambda rows: users[rows] @ items.T, x, valid, test, "test")
    setting = f"factors={factors} reg={reg} iterations=15 (chosen on validation)"
    return {"setting": setting, "valid_ndcg10": valid_ndcg, "test": metrics}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cascade", default="target/release/cascade")
    parser.add_argument("--config")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--models", default="als,ease")
    parser.add_argument("--ease-max-items", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    x, valid, test = read_split(args.cascade, args.config, args.workspace)
    report = {"users": x.shape[0], "items": x.shape[1], "train_interactions": int(x.nnz), "peers": {}}
    for name in args.models.split(","):
        started = time.time()
        if name == "ease":
            if x.shape[1] > args.ease_max_items:
                report["peers"][name] = {"skipped": f"{x.shape[1]} items > --ease-max-items"}
                continue
            result = ease(x, valid, test)
        elif name == "als":
            result = als(x, valid, test, args.seed)
        else:
            sys.exit(f"unknown peer {name}; peers: als, ease")
        result["seconds"] = time.time() - started
        report["peers"][name] = result
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
