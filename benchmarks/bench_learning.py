"""Learning from reviews: simulated analysts on the real labels, one source held out as the test.

Each night the analysts review the top 20 of the queue (the texts not yet reviewed), their labels
join the training data, and the model is retrained. Three queue orders are compared: highest score,
most uncertain (closest to the flag threshold) and random. The model starts from the written texts
only; AP and clear recall at the threshold are measured on the held-out source after 0, 50, 100 and
200 reviews. The threshold is the highest one keeping recall 0.9 on the clear positives reviewed so
far, scored out of fold as `radar train` does (in-sample only before three clear positives are reviewed).

Run: `python -m benchmarks.bench_learning [--held-out SOURCE]` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold

from pipeline.detect.classify import fit_detector, threshold_for_recall
from pipeline.detect.evaluate import load_written
from pipeline.detect.nlp import analyse
from pipeline.settings import load_settings
from pipeline.detect.train import gather_examples

NIGHTLY = 20
CHECKPOINTS = (0, 50, 100, 200)
ORDERS = ("highest", "uncertain", "random")
OOF_FOLDS = 3
HELD_OUT = "Babakfifoo/dutch_embedding_llm"  # the largest source with clear positives (zoning plans)


def simulate(order: str, pool, pool_analyses, test, test_analyses, written, written_analyses, seed: int = 0) -> list[dict]:
    """Run nightly review rounds with one queue order; return the figures at each checkpoint."""
    rng = np.random.default_rng(seed)
    reviewed: list[int] = []
    y_test = np.array([e.cocreation for e in test], dtype=int)
    clear = np.array([e.cocreation and not e.borderline for e in test])
    rows, due = [], list(CHECKPOINTS)
    while due:
        examples = written + [pool[i] for i in reviewed]
        analyses = written_analyses + [pool_analyses[i] for i in reviewed]
        detector = fit_detector(examples, analyses)
        train_scores = detector.raw_scores(analyses)[0]
        threshold = threshold_for_recall(train_scores, np.array([e.cocreation and not e.borderline for e in examples]))
        if len(reviewed) >= due[0]:  # nights review 20 at a time: report at the first night past a checkpoint
            due.pop(0)
            scores = detector.raw_scores(test_analyses)[0]
            flags = scores >= honest_threshold(written, written_analyses, [pool[i] for i in reviewed],
                                               [pool_analyses[i] for i in reviewed], threshold)
            rows.append({"reviews": len(reviewed), "positives_reviewed": sum(pool[i].cocreation for i in reviewed),
                         "average_precision": round(float(average_precision_score(y_test, scores)), 4),
                         "recall_clear": round(float(flags[clear].mean()), 4), "flagged": int(flags.sum())})
        queue = [i for i in range(len(pool)) if i not in set(reviewed)]
        queue_scores = detector.raw_scores([pool_analyses[i] for i in queue])[0]
        reviewed += pick(order, queue, queue_scores, threshold, rng)
    return rows


def honest_threshold(written, written_analyses, reviewed, reviewed_analyses, fallback: float) -> float:
    """Return the threshold keeping recall 0.9 on the reviewed clear positives, scored out of fold.

    As `radar train` does: a model never sets its threshold on texts it trained on (in-sample scores
    of its own positives are too high, so the threshold grows stricter with every review). Written
    texts always train and are never scored. With fewer than three reviewed clear positives there
    is nothing to hold out, and the in-sample `fallback` stands.
    """
    clear = np.array([e.cocreation and not e.borderline for e in reviewed])
    if clear.sum() < OOF_FOLDS or (~clear).sum() < OOF_FOLDS:
        return fallback
    oof = np.zeros(len(reviewed))
    for train, test in StratifiedKFold(n_splits=OOF_FOLDS, shuffle=True, random_state=0).split(oof, clear):
        detector = fit_detector(written + [reviewed[i] for i in train],
                                written_analyses + [reviewed_analyses[i] for i in train])
        oof[test] = detector.raw_scores([reviewed_analyses[i] for i in test])[0]
    return threshold_for_recall(oof, clear)


def pick(order: str, queue: list[int], scores: np.ndarray, threshold: float, rng) -> list[int]:
    """Return tonight's 20 texts for review under a queue order."""
    if order == "highest":
        chosen = np.argsort(-scores, kind="stable")[:NIGHTLY]
    elif order == "uncertain":
        chosen = np.argsort(np.abs(scores - threshold), kind="stable")[:NIGHTLY]
    else:
        chosen = rng.choice(len(queue), size=min(NIGHTLY, len(queue)), replace=False)
    return [queue[k] for k in chosen]


def main(held_out: str = HELD_OUT) -> dict:
    """Simulate the three queue orders and return their learning curves."""
    settings = load_settings()
    real = gather_examples(settings.train_articles, settings.train_labels, use_written=False).real
    test = [e for e in real if e.source == held_out]
    pool = [e for e in real if e.source != held_out]
    written = load_written()
    pool_analyses = analyse([(e.title, e.text) for e in pool])
    test_analyses = analyse([(e.title, e.text) for e in test])
    written_analyses = analyse([(e.title, e.text) for e in written])
    curves = {order: simulate(order, pool, pool_analyses, test, test_analyses, written, written_analyses)
              for order in ORDERS}
    return {"held_out": held_out, "test_texts": len(test), "test_positives": sum(e.cocreation for e in test),
            "pool_texts": len(pool), "nightly_reviews": NIGHTLY, "curves": curves}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held-out", default=HELD_OUT, help="the source used as the test")
    print(json.dumps(main(parser.parse_args().held_out), indent=2))
