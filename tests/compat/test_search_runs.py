"""search_runs through MlflowClient: every comparator of api.md §5.2, ordering, pagination,
and Cairn's `OR` / parentheses extension."""

from __future__ import annotations

import pytest
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, ViewType
from mlflow.tracking import MlflowClient

from helpers import raises_mlflow, unique

CONTEXT = "mlflow.data.context"


def _dataset_input(name: str, digest: str, context: str) -> DatasetInput:
    dataset = Dataset(
        name=name,
        digest=digest,
        source_type="local",
        source='{"uri": "/data/' + name + '"}',
        schema='{"mlflow_colspec": []}',
        profile='{"num_rows": 3}',
    )
    return DatasetInput(dataset=dataset, tags=[InputTag(key=CONTEXT, value=context)])


class Corpus:
    """Four runs with known attributes, metrics, params, tags and dataset inputs.

    | run | name    | start | end  | status   | m | n | p     | t   | dataset name/digest/context  |
    |-----|---------|-------|------|----------|---|---|-------|-----|------------------------------|
    | r1  | run-a   | 1000  | 5000 | FINISHED | 1 | 5 | alpha | Foo | ds-train/aaa111/training     |
    | r2  | run-b   | 2000  | -    | RUNNING  | 2 | 5 | beta  | foo | ds-eval/bbb222/eval          |
    | r3  | other-c | 3000  | 7000 | FAILED   | 3 | 1 | -     | -   | ds-train/aaa111/testing and  |
    |     |         |       |      |          |   |   |       |     | ds-extra/ccc333/training     |
    | r4  | run-d   | 4000  | 6000 | KILLED   | - | - | ALPHA | bar | -                            |

    r1's user is "ana" (mlflow.user tag at creation); the others' is "unknown".
    """

    def __init__(self, client: MlflowClient):
        self.client = client
        self.experiment_id = client.create_experiment(unique("search"))
        spec = [
            ("run-a", 1000, 5000, "FINISHED", {"m": 1.0, "n": 5.0}, {"p": "alpha"}, {"t": "Foo"}),
            ("run-b", 2000, None, "RUNNING", {"m": 2.0, "n": 5.0}, {"p": "beta"}, {"t": "foo"}),
            ("other-c", 3000, 7000, "FAILED", {"m": 3.0, "n": 1.0}, {}, {}),
            ("run-d", 4000, 6000, "KILLED", {}, {"p": "ALPHA"}, {"t": "bar"}),
        ]
        self.ids: dict[str, str] = {}
        for i, (name, start, end, status, metrics, params, tags) in enumerate(spec, start=1):
            creation_tags = {"mlflow.user": "ana"} if i == 1 else {}
            run = client.create_run(
                self.experiment_id, start_time=start, run_name=name, tags=creation_tags
            )
            run_id = run.info.run_id
            self.ids[f"r{i}"] = run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, 10, 0) for k, v in metrics.items()],
                params=[],
                tags=[],
            )
            for k, v in params.items():
                client.log_param(run_id, k, v)
            for k, v in tags.items():
                client.set_tag(run_id, k, v)
            if status != "RUNNING":
                client.set_terminated(run_id, status=status, end_time=end)
        client.log_inputs(self.ids["r1"], [_dataset_input("ds-train", "aaa111", "training")])
        client.log_inputs(self.ids["r2"], [_dataset_input("ds-eval", "bbb222", "eval")])
        client.log_inputs(
            self.ids["r3"],
            [
                _dataset_input("ds-train", "aaa111", "testing"),
                _dataset_input("ds-extra", "ccc333", "training"),
            ],
        )
        self.names = {run_id: label for label, run_id in self.ids.items()}

    def search(self, filter_string: str = "", order_by=None) -> list[str]:
        """The labels ("r1", ...) of the matching runs, in the server's order."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=filter_string, order_by=order_by, max_results=100
        )
        return [self.names[r.info.run_id] for r in runs]

    def matching(self, filter_string: str) -> set[str]:
        return set(self.search(filter_string))


@pytest.fixture(scope="module")
def corpus(server) -> Corpus:
    return Corpus(MlflowClient(tracking_uri=server.url))


def test_corpus_is_as_described(corpus):
    run = corpus.client.get_run(corpus.ids["r3"])
    assert (run.info.status, run.info.start_time, run.info.end_time) == ("FAILED", 3000, 7000)
    run = corpus.client.get_run(corpus.ids["r2"])
    assert (run.info.status, run.info.end_time) == ("RUNNING", None)
    assert corpus.client.get_run(corpus.ids["r1"]).info.user_id == "ana"


METRIC_FILTERS = [
    ("metrics.m > 2", {"r3"}),
    ("metrics.m >= 2", {"r2", "r3"}),
    ("metrics.m = 2", {"r2"}),
    ("metrics.m != 2", {"r1", "r3"}),  # r4 has no m: false for every comparator
    ("metrics.m < 2", {"r1"}),
    ("metrics.m <= 2", {"r1", "r2"}),
    ("metric.m <= 2.0", {"r1", "r2"}),
    ("metrics.m > -1e3", {"r1", "r2", "r3"}),
    ("metrics.m > 1 AND metrics.n = 5", {"r2"}),
    ("metrics.`m` = 3", {"r3"}),
    ("metrics.missing > 0", set()),
]

PARAM_FILTERS = [
    ("params.p = 'alpha'", {"r1"}),
    ('params.p = "alpha"', {"r1"}),
    ("params.p != 'alpha'", {"r2", "r4"}),  # r3 has no p
    ("params.p LIKE 'a%'", {"r1"}),  # LIKE is case-sensitive
    ("params.p LIKE '%LPH_'", {"r4"}),
    ("params.p ILIKE 'a%'", {"r1", "r4"}),
    ("params.p ILIKE '%ET%'", {"r2"}),
    ("params.p IS NULL", {"r3"}),
    ("params.p IS NOT NULL", {"r1", "r2", "r4"}),
    ("param.p = 'beta'", {"r2"}),
    ("parameters.p = 'beta'", {"r2"}),
]

TAG_FILTERS = [
    ("tags.t = 'Foo'", {"r1"}),
    ("tags.t != 'Foo'", {"r2", "r4"}),
    ("tags.t LIKE 'f%'", {"r2"}),
    ("tags.t ILIKE 'f%'", {"r1", "r2"}),
    ("tags.t IS NULL", {"r3"}),
    ("tags.t IS NOT NULL", {"r1", "r2", "r4"}),
    ("tag.t = 'bar'", {"r4"}),
    ("tags.`mlflow.runName` = 'run-b'", {"r2"}),
    ("tags.\"mlflow.runName\" = 'other-c'", {"r3"}),
]

ATTRIBUTE_FILTERS = [
    ("attributes.run_name = 'run-a'", {"r1"}),
    ("run_name = 'run-a'", {"r1"}),
    ("attributes.run_name != 'run-a'", {"r2", "r3", "r4"}),
    ("attributes.run_name LIKE 'run-%'", {"r1", "r2", "r4"}),
    ("attributes.run_name LIKE 'RUN-%'", set()),
    ("attributes.run_name ILIKE 'RUN-%'", {"r1", "r2", "r4"}),
    ("attributes.status = 'FINISHED'", {"r1"}),
    ("attributes.status != 'RUNNING'", {"r1", "r3", "r4"}),
    ("status LIKE 'F%'", {"r1", "r3"}),
    ("attributes.user_id = 'ana'", {"r1"}),
    ("attributes.start_time > 2000", {"r3", "r4"}),
    ("attributes.start_time >= 2000", {"r2", "r3", "r4"}),
    ("attributes.start_time = 2000", {"r2"}),
    ("attributes.start_time != 2000", {"r1", "r3", "r4"}),
    ("attributes.start_time < 2000", {"r1"}),
    ("attributes.start_time <= 2000", {"r1", "r2"}),
    ("attributes.created >= 3000", {"r3", "r4"}),
    ("attributes.end_time > 5000", {"r3", "r4"}),
    ("attributes.end_time >= 5000", {"r1", "r3", "r4"}),
    ("attributes.end_time = 6000", {"r4"}),
    ("attributes.end_time < 6000", {"r1"}),
    ("attributes.end_time <= 6000", {"r1", "r4"}),
    ("attributes.end_time != 6000", {"r1", "r3"}),  # r2 has no end_time
]

DATASET_FILTERS = [
    ("datasets.name = 'ds-train'", {"r1", "r3"}),
    ("datasets.name != 'ds-train'", {"r2", "r3"}),  # any of the run's datasets
    ("datasets.name LIKE 'ds-%'", {"r1", "r2", "r3"}),
    ("datasets.name LIKE 'DS-%'", set()),
    ("datasets.name ILIKE 'DS-E%'", {"r2", "r3"}),
    ("datasets.name IN ('ds-eval', 'ds-extra')", {"r2", "r3"}),
    ("datasets.name NOT IN ('ds-train')", {"r2", "r3"}),
    ("datasets.digest = 'bbb222'", {"r2"}),
    ("datasets.digest IN ('aaa111')", {"r1", "r3"}),
    ("datasets.digest LIKE 'c%'", {"r3"}),
    ("datasets.context = 'training'", {"r1", "r3"}),
    ("datasets.context = 'eval'", {"r2"}),
    ("datasets.context != 'training'", {"r2", "r3"}),
    ("datasets.context IN ('testing')", {"r3"}),
    ("datasets.context ILIKE 'TRAIN%'", {"r1", "r3"}),
    ("datasets.name = 'ds-train' AND datasets.context = 'testing'", {"r3"}),
]


@pytest.mark.parametrize(
    "filter_string, expected", METRIC_FILTERS, ids=[f for f, _ in METRIC_FILTERS]
)
def test_metric_comparators(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


@pytest.mark.parametrize(
    "filter_string, expected", PARAM_FILTERS, ids=[f for f, _ in PARAM_FILTERS]
)
def test_param_comparators(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


@pytest.mark.parametrize("filter_string, expected", TAG_FILTERS, ids=[f for f, _ in TAG_FILTERS])
def test_tag_comparators(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


@pytest.mark.parametrize(
    "filter_string, expected", ATTRIBUTE_FILTERS, ids=[f for f, _ in ATTRIBUTE_FILTERS]
)
def test_attribute_comparators(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


@pytest.mark.parametrize(
    "filter_string, expected", DATASET_FILTERS, ids=[f for f, _ in DATASET_FILTERS]
)
def test_dataset_comparators(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


def test_run_id_in_and_not_in(corpus):
    r1, r2, r3 = corpus.ids["r1"], corpus.ids["r2"], corpus.ids["r3"]
    assert corpus.matching(f"attributes.run_id IN ('{r1}', '{r3}')") == {"r1", "r3"}
    assert corpus.matching(f"attributes.run_id NOT IN ('{r1}', '{r3}')") == {"r2", "r4"}
    assert corpus.matching(f"run_id = '{r2}'") == {"r2"}
    assert corpus.matching(f"attributes.run_id != '{r2}'") == {"r1", "r3", "r4"}
    assert corpus.matching(f"attributes.run_id IN ('{r2}') AND metrics.m > 1") == {"r2"}


ORDERINGS = [
    (["metrics.m ASC"], ["r1", "r2", "r3", "r4"]),  # missing values last
    (["metrics.m DESC"], ["r3", "r2", "r1", "r4"]),  # ... in both directions
    (["metrics.m"], ["r1", "r2", "r3", "r4"]),  # ASC by default
    (["metrics.n ASC"], ["r3", "r2", "r1", "r4"]),  # tie r1/r2 -> start_time DESC
    (["params.p ASC"], ["r4", "r1", "r2", "r3"]),  # "ALPHA" < "alpha" < "beta", missing last
    (["params.p DESC"], ["r2", "r1", "r4", "r3"]),
    (["tags.t ASC"], ["r1", "r4", "r2", "r3"]),  # "Foo" < "bar" < "foo"
    (["tags.t DESC"], ["r2", "r4", "r1", "r3"]),
    (["attributes.start_time ASC"], ["r1", "r2", "r3", "r4"]),
    (["attributes.start_time DESC"], ["r4", "r3", "r2", "r1"]),
    (["start_time"], ["r1", "r2", "r3", "r4"]),
    (["attributes.end_time ASC"], ["r1", "r4", "r3", "r2"]),  # r2 has none: last
    (["attributes.end_time DESC"], ["r3", "r4", "r1", "r2"]),
    (["attributes.run_name ASC"], ["r3", "r1", "r2", "r4"]),
    (["attributes.run_name DESC"], ["r4", "r2", "r1", "r3"]),
    (["attributes.status ASC"], ["r3", "r1", "r4", "r2"]),  # FAILED FINISHED KILLED RUNNING
    (["attributes.status DESC"], ["r2", "r4", "r1", "r3"]),
    (["metrics.n DESC", "params.p ASC"], ["r1", "r2", "r3", "r4"]),
    (["tags.`mlflow.runName` ASC"], ["r3", "r1", "r2", "r4"]),
    ([], ["r4", "r3", "r2", "r1"]),  # default: start_time DESC, run_id ASC
]


@pytest.mark.parametrize(
    "order_by, expected", ORDERINGS, ids=[" , ".join(o) or "default" for o, _ in ORDERINGS]
)
def test_order_by(corpus, order_by, expected):
    assert corpus.search(order_by=order_by) == expected


def test_order_by_with_filter(corpus):
    assert corpus.search("metrics.m >= 2", order_by=["metrics.m ASC"]) == ["r2", "r3"]
    assert corpus.search("params.p ILIKE 'a%'", order_by=["params.p DESC"]) == ["r1", "r4"]


BAD_FILTERS = [
    "params.p > 'a'",  # params take no numeric comparators
    "metrics.m = 'one'",  # metrics compare numbers
    "metrics.m IS NULL",  # IS NULL only for params and tags
    "params.p = alpha",  # unquoted string
    "attributes.status IN ('FINISHED')",  # IN only for run_id
    "attributes.lifecycle_stage = 'active'",
    "foo.bar = 'x'",
    "metrics.m >",
]


@pytest.mark.parametrize("filter_string", BAD_FILTERS)
def test_bad_filters_are_invalid_parameter_value(corpus, filter_string):
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        corpus.search(filter_string)


@pytest.mark.parametrize("order_by", [["metrics.m SIDEWAYS"], ["nosuch.x"], ["attributes.nope"]])
def test_bad_order_by_is_invalid_parameter_value(corpus, order_by):
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        corpus.search(order_by=order_by)


# ---- Cairn's extension: OR and parentheses ----------------------------------------------------

OR_FILTERS = [
    ("metrics.m = 1 OR metrics.m = 3", {"r1", "r3"}),
    ("metrics.m = 1 or metrics.m = 3", {"r1", "r3"}),
    ("(params.p = 'alpha' OR params.p = 'beta') AND metrics.m > 1", {"r2"}),
    ("params.p = 'ALPHA' OR (tags.t = 'Foo' AND metrics.m < 2)", {"r1", "r4"}),
    ("((metrics.m > 2))", {"r3"}),
    ("(metrics.m > 2)", {"r3"}),
    ("attributes.status = 'KILLED' OR datasets.context = 'eval'", {"r2", "r4"}),
    ("params.p IS NULL OR tags.t = 'bar'", {"r3", "r4"}),
    (
        "metrics.m = 1 AND tags.t = 'Foo' OR attributes.run_name = 'run-d'",
        {"r1", "r4"},
    ),  # AND binds tighter
    ("metrics.m = 1 AND (tags.t = 'Foo' OR attributes.run_name = 'run-d')", {"r1"}),
]


@pytest.mark.cairn_only
@pytest.mark.parametrize("filter_string, expected", OR_FILTERS, ids=[f for f, _ in OR_FILTERS])
def test_or_and_parentheses(corpus, filter_string, expected):
    assert corpus.matching(filter_string) == expected


@pytest.mark.cairn_only
def test_or_with_order_by(corpus):
    assert corpus.search("metrics.m = 3 OR params.p = 'ALPHA'", order_by=["metrics.m DESC"]) == [
        "r3",
        "r4",
    ]


@pytest.mark.cairn_only
@pytest.mark.parametrize(
    "filter_string", ["(metrics.m > 1", "metrics.m > 1)", "metrics.m > 1 OR", "()"]
)
def test_bad_or_filters_are_invalid_parameter_value(corpus, filter_string):
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        corpus.search(filter_string)


# ---- pagination ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_runs(server):
    """23 runs; several share a start_time (so run_id breaks ties), every third lacks metric x."""
    client = MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(unique("pages"))
    ids = []
    for i in range(23):
        run_id = client.create_run(exp_id, start_time=1_000 + (i // 3)).info.run_id
        if i % 3:
            client.log_metric(run_id, "x", float(i % 5), timestamp=1)
        client.log_param(run_id, "i", str(i))
        ids.append(run_id)
    return client, exp_id, ids


def _all_pages(client, exp_id, page_size, **kwargs) -> tuple[list[str], list[int]]:
    ids, sizes, token = [], [], None
    while True:
        page = client.search_runs([exp_id], max_results=page_size, page_token=token, **kwargs)
        ids += [r.info.run_id for r in page]
        sizes.append(len(page))
        token = page.token
        if not token:
            return ids, sizes
        assert len(sizes) <= 100, "pagination does not end"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"order_by": ["metrics.x ASC"]},
        {"order_by": ["metrics.x DESC", "params.i ASC"]},
        {"order_by": ["attributes.start_time ASC"]},
        {"filter_string": "metrics.x >= 1", "order_by": ["metrics.x ASC"]},
    ],
    ids=["default", "metric-asc", "metric-desc-param", "start-asc", "filtered"],
)
def test_pagination_to_the_end_matches_one_big_page(many_runs, kwargs):
    client, exp_id, ids = many_runs
    one_page = client.search_runs([exp_id], max_results=1000, **kwargs)
    assert one_page.token is None
    expected = [r.info.run_id for r in one_page]
    for size in (5, 1, 7):
        got, sizes = _all_pages(client, exp_id, size, **kwargs)
        assert got == expected
        assert len(set(got)) == len(got)
        assert all(s == size for s in sizes[:-1]) and 0 < sizes[-1] <= size


def test_default_order_breaks_start_time_ties_by_run_id(many_runs):
    client, exp_id, ids = many_runs
    got = [r.info.run_id for r in client.search_runs([exp_id], max_results=1000)]
    start = {run_id: 1_000 + (i // 3) for i, run_id in enumerate(ids)}
    assert got == sorted(ids, key=lambda r: (-start[r], r))


def test_exact_page_boundary_has_no_trailing_token(server):
    client = MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(unique("pages"))
    for _ in range(4):
        client.create_run(exp_id)
    first = client.search_runs([exp_id], max_results=2)
    second = client.search_runs([exp_id], max_results=2, page_token=first.token)
    assert (len(first), len(second)) == (2, 2)
    assert first.token and not second.token


def test_search_several_experiments(server):
    client = MlflowClient(tracking_uri=server.url)
    a = client.create_experiment(unique("multi"))
    b = client.create_experiment(unique("multi"))
    ra = client.create_run(a).info.run_id
    rb = client.create_run(b).info.run_id
    assert {r.info.run_id for r in client.search_runs([a, b])} == {ra, rb}
    assert [r.info.run_id for r in client.search_runs([b])] == [rb]
    assert client.search_runs([a, b], run_view_type=ViewType.DELETED_ONLY) == []


def test_bad_page_token_and_max_results(many_runs):
    client, exp_id, _ = many_runs
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_runs([exp_id], page_token="not-a-token")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_runs([exp_id], max_results=50001)


def test_quoting_in_filters_and_keys(server):
    client = MlflowClient(tracking_uri=server.url)
    exp_id = client.create_experiment(unique("quotes"))
    run_id = client.create_run(exp_id).info.run_id
    other = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "my param", "it's")
    client.log_param(other, "my param", 'say "hi"')
    client.log_metric(run_id, "train/loss", 0.25, timestamp=1)
    client.log_metric(other, "train/loss", 0.75, timestamp=1)

    def ids(filter_string, order_by=None):
        return [
            r.info.run_id for r in client.search_runs([exp_id], filter_string, order_by=order_by)
        ]

    assert ids('params.`my param` = "it\'s"') == [run_id]
    assert ids('params."my param" = \'say "hi"\'') == [other]
    assert ids("metrics.`train/loss` < 0.5") == [run_id]
    assert ids("", order_by=["metrics.`train/loss` DESC"]) == [other, run_id]
