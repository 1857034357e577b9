"""Trains an ElasticNet on scikit-learn's bundled diabetes data set and logs it with mlflow.

`cairn run` creates the run and passes MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_ID: `mlflow.start_run()` resumes that run, so everything below lands in it.
"""

import argparse

import mlflow
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--l1-ratio", type=float, required=True)
    parser.add_argument("--max-iter", type=int, required=True)
    args = parser.parse_args()

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    model = ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio, max_iter=args.max_iter, random_state=42)
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)

    with mlflow.start_run():
        mlflow.log_params({"n_train": len(x_train), "n_test": len(x_test)})
        mlflow.log_metrics(
            {
                "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
                "mae": float(mean_absolute_error(y_test, predicted)),
                "r2": float(r2_score(y_test, predicted)),
            }
        )
        mlflow.log_dict(dict(zip(x.columns, model.coef_.tolist())), "coefficients.json")
        info = mlflow.sklearn.log_model(model, name="model", input_example=x_test.iloc[:2])
        print(f"rmse={np.sqrt(mean_squared_error(y_test, predicted)):.4f} model={info.model_uri}")


if __name__ == "__main__":
    main()
