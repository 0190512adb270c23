"""Models users have, built here from data that ships with scikit-learn: small, so the tests stay quick."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.utils import Bunch


@dataclass
class Case:
    """A fitted model, its data, and how to save it where the importer takes it from."""

    name: str
    data: Bunch
    fit: Callable[[pd.DataFrame, Any], Any]
    save: Callable[[Any, Path], Path]
    classifier: bool


def pickled(model: Any, directory: Path) -> Path:
    joblib.dump(model, directory / "model.joblib")
    return directory / "model.joblib"


def xgboost_file(booster: Any, directory: Path) -> Path:
    booster.save_model(directory / "model.ubj")
    return directory / "model.ubj"


def lightgbm_file(booster: Any, directory: Path) -> Path:
    booster.save_model(directory / "model.txt")
    return directory / "model.txt"


def iris() -> Bunch:
    return load_iris(as_frame=True)


def wine() -> Bunch:
    return load_wine(as_frame=True)


def breast_cancer() -> Bunch:
    return load_breast_cancer(as_frame=True)


def diabetes() -> Bunch:
    return load_diabetes(as_frame=True)


def named_labels(data: Bunch) -> Any:
    """String class labels (the iris species), as many users' classifiers have."""
    return data.target_names[data.target]


def logistic(x: pd.DataFrame, y: Any) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


def forest_classifier(x: pd.DataFrame, y: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, max_depth=6, random_state=0).fit(x, y)


def scaled_forest_regressor(x: pd.DataFrame, y: Any) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RandomForestRegressor(n_estimators=5, random_state=0)).fit(x, y)


def by_name(x: pd.DataFrame, y: Any) -> Any:
    """A ColumnTransformer that picks its columns by name, each group scaled its own way."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    columns = list(x.columns)
    picks = ColumnTransformer([("sepals", StandardScaler(), columns[:2]), ("petals", MinMaxScaler(), columns[2:])])
    return make_pipeline(picks, LogisticRegression(max_iter=1000)).fit(x, y)


def xgb_classifier(x: pd.DataFrame, y: Any) -> Any:
    import xgboost

    return xgboost.XGBClassifier(n_estimators=4, max_depth=3).fit(x, y)


def scaled_xgb_classifier(x: pd.DataFrame, y: Any) -> Any:
    """XGBoost at the end of a scikit-learn pipeline (skl2onnx with onnxmltools' converter)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), xgb_classifier(x, y)).fit(x, y)


def scaled_lgbm_regressor(x: pd.DataFrame, y: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), lgbm_regressor(x, y)).fit(x, y)


def xgb_regressor(x: pd.DataFrame, y: Any) -> Any:
    import xgboost

    return xgboost.XGBRegressor(n_estimators=4, max_depth=3).fit(x, y)


def xgb_booster(x: pd.DataFrame, y: Any) -> Any:
    import xgboost

    return xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(x, y), 4)


def lgbm_classifier(x: pd.DataFrame, y: Any) -> Any:
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=4, num_leaves=7, verbose=-1).fit(x, y)


def lgbm_regressor(x: pd.DataFrame, y: Any) -> Any:
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=4, num_leaves=7, verbose=-1).fit(x, y)


def lgbm_booster(x: pd.DataFrame, y: Any) -> Any:
    import lightgbm

    params = {"objective": "regression", "num_leaves": 7, "verbose": -1}
    return lightgbm.train(params, lightgbm.Dataset(x, y), 4)


CASES = [
    Case("iris-logistic-species", iris(), lambda x, y: logistic(x, named_labels(iris())), pickled, True),
    Case("wine-logistic", wine(), logistic, pickled, True),
    Case("breast-cancer-forest", breast_cancer(), forest_classifier, pickled, True),
    Case("iris-by-name", iris(), lambda x, y: by_name(x, named_labels(iris())), pickled, True),
    Case("iris-xgboost", iris(), xgb_classifier, pickled, True),
    Case("diabetes-xgboost", diabetes(), xgb_regressor, pickled, False),
    Case("iris-scaled-xgboost", iris(), scaled_xgb_classifier, pickled, True),
    Case("diabetes-scaled-lightgbm", diabetes(), scaled_lgbm_regressor, pickled, False),
    Case("breast-cancer-xgboost-booster", breast_cancer(), xgb_booster, xgboost_file, True),
    Case("wine-lightgbm", wine(), lgbm_classifier, pickled, True),
    Case("diabetes-lightgbm", diabetes(), lgbm_regressor, pickled, False),
    Case("diabetes-lightgbm-booster", diabetes(), lgbm_booster, lightgbm_file, False),
]


class Doubler(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """A hand-written regressor skl2onnx knows nothing of: the importer must refuse it at convert."""

    def fit(self, x: Any, y: Any) -> Doubler:
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> Any:
        return 2 * x[:, 0]
