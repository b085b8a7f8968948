import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support, roc_auc_score

from deepuad.estimators.metrics import binary_metrics, ranking_metrics


@pytest.mark.parametrize("seed", range(5))
def test_metrics_agree_with_scikit_learn_including_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.1).astype(np.int8)
    scores = np.round(rng.normal(size=3000) + y, 1 if seed % 2 else 4).astype(np.float32)  # odd seeds: many ties
    flagged = scores > np.quantile(scores, 0.9)
    ours = binary_metrics(y, scores, flagged)
    precision, recall, f1, _ = precision_recall_fscore_support(y, flagged, average="binary", zero_division=0)
    assert ours["auroc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-9)
    assert ours["auprc"] == pytest.approx(average_precision_score(y, scores), abs=1e-9)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((precision, recall, f1))


def test_one_class_has_no_ranking_metrics():
    assert ranking_metrics(np.zeros(5), np.arange(5.0)) == {"auroc": None, "auprc": None}
