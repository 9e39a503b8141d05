"""The TF-IDF backend scores with the fitted pipeline's numbers, without scikit-learn's call path."""

from __future__ import annotations

import numpy as np

from models.artifact import load_artifact
from models.tfidf_model import TfidfClassifier, build_pipeline

TRAIN = [
    "专业代孕 包成功 包男孩", "试管代怀 包性别", "高价收肾 配型快", "出售肾源 当天手术",
    "私下送养男婴 可上户口", "不要的孩子 私下抱养", "出生证明办理 可查", "代办出生医学证明",
    "二手婴儿车 九成新", "周末亲子活动 报名", "民政局收养登记流程", "器官捐献志愿者培训",
]
LABELS = np.array([[0, 0, 0, 1, 0, 0]] * 2 + [[0, 0, 0, 0, 0, 1]] * 2 + [[0, 0, 1, 0, 0, 0]] * 2
                  + [[0, 0, 0, 0, 1, 0]] * 2 + [[0, 0, 0, 0, 0, 0]] * 4)
# The last column needs a positive and a negative for its estimator to be a regression.
LABELS[8, 0] = LABELS[9, 1] = 1
PROBES = ["", "   ", "包成功 包成功 包成功", "完全没见过的词语组合", "收肾 代孕 出生证明", "ABC abc 123"]


def test_direct_scoring_matches_the_pipeline() -> None:
    pipeline = build_pipeline(max_char_features=500, max_word_features=200)
    pipeline.set_params(features__chars__min_df=1, features__words__min_df=1)
    pipeline.fit(TRAIN, LABELS)
    model = TfidfClassifier(pipeline)
    np.testing.assert_allclose(model.predict_proba(PROBES), pipeline.predict_proba(PROBES), rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(PROBES[2:3]), pipeline.predict_proba(PROBES[2:3]), atol=1e-12)
    assert model.predict_proba([]).shape == (0, 6)


def test_direct_scoring_matches_the_shipped_pipeline() -> None:
    model = load_artifact("baseline").load_model()
    assert isinstance(model, TfidfClassifier)
    np.testing.assert_allclose(model.predict_proba(PROBES + TRAIN), model.pipeline.predict_proba(PROBES + TRAIN),
                               rtol=0, atol=1e-12)


def test_an_unknown_pipeline_shape_falls_back_to_scikit_learn() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("tfidf", TfidfVectorizer(analyzer="char")), ("lr", LogisticRegression())])
    pipeline.fit(TRAIN, LABELS[:, 3])
    model = TfidfClassifier(pipeline)
    np.testing.assert_array_equal(model.predict_proba(PROBES), pipeline.predict_proba(PROBES))
