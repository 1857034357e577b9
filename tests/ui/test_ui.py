"""The web UI in headless Chromium against a real `cairn server` the mlflow client populated."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from playwright.sync_api import expect

from conftest import (
    BIG_HISTORY,
    NESTED_FILLERS,
    SPIKE_STEP,
    SPIKE_VALUE,
    VIEWPORT,
    XSS_ARTIFACT,
    XSS_NAME,
    XSS_TAG,
    drawn_pixels,
    shot,
)


def runs_table_names(page) -> list[str]:
    return page.locator("table.runs tbody tr[data-run-id] td.name a").all_inner_texts()


def test_experiments_page_lists_the_logged_runs_nested_under_their_parent(page, data):
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("h1")).to_have_text(data.experiment_name)
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(len(data.runs) - 1)
    names = runs_table_names(page)
    # Children follow their parent, marked as nested.
    i = names.index("parent")
    assert set(names[i + 1 : i + 3]) == {"child-a", "child-b"}, names
    expect(page.locator("tr.child")).to_have_count(2)
    expect(page.locator(".exp-list li.selected")).to_contain_text(data.experiment_name)
    shot(page, "experiments")
    # Keyboard: ↓ moves through the rows, Enter opens the focused run.
    page.focus("table.runs")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = page.locator("table.runs tbody tr.focus td.name a")
    expect(second).to_have_text(names[1])
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(names[1])


def test_nested_runs_are_shown_under_their_parent_across_pages(page, data):
    parent, child = data.nested_runs["far-parent"], data.nested_runs["far-child"]
    page.goto(f"{data.url}/#/experiments/{data.nested_experiment_id}")
    # Page 1 holds the child (the newest run); its parent, on page 2, is shown above it.
    first = page.locator("table.runs tbody tr[data-run-id]").first
    expect(first).to_have_attribute("data-run-id", parent)
    expect(first).to_have_class(re.compile("elsewhere"))
    expect(page.locator("table.runs tbody tr[data-run-id]").nth(1)).to_have_attribute("data-run-id", child)
    expect(page.locator(f'tr[data-run-id="{child}"]')).to_have_class(re.compile("child"))
    expect(page.locator(".pager")).to_contain_text("50 runs")
    # Page 2 holds the parent; its child, on page 1, is shown under it.
    page.click("button:has-text('Next')")
    expect(page.locator(".pager")).to_contain_text(f"{NESTED_FILLERS + 2 - 50} runs")
    # The page's own rows are drawn first; the child from the other page follows its own request.
    expect(page.locator(f'tr[data-run-id="{child}"]')).to_have_class(re.compile("elsewhere"))
    rows = page.locator("table.runs tbody tr[data-run-id]")
    ids = [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())]
    assert ids.index(child) == ids.index(parent) + 1, ids
    expect(page.locator(f'tr[data-run-id="{child}"]')).to_have_class(re.compile("elsewhere"))
    shot(page, "nested-across-pages")


def test_filter_sort_and_columns_are_server_side_and_kept_in_the_url(page, data):
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("table.runs tbody tr[data-run-id]").first).to_be_visible()
    # Filter with OR and parentheses.
    page.fill("input.filter", "params.optimizer = 'sgd' AND (metrics.acc > 0.3 OR params.lr = '0.5')")
    page.keyboard.press("Enter")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(2)
    assert sorted(runs_table_names(page)) == ["child-b", "solo"]
    # A parse error is shown in place.
    page.fill("input.filter", "metrics.acc >>> 1")
    page.keyboard.press("Enter")
    expect(page.locator(".filter-error .error")).to_be_visible()
    expect(page.locator("input.filter.invalid")).to_have_count(1)
    page.fill("input.filter", "")
    page.keyboard.press("Enter")
    expect(page.locator(".filter-error .error")).to_have_count(0)
    # Column picker: it offers every key of the experiment's runs (from the server), also keys
    # no run of the page has: `signal` is only logged by the long-history run.
    page.fill("input.filter", "attributes.run_name = 'solo'")
    page.keyboard.press("Enter")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(1)
    with page.expect_request(lambda r: "cairn/runs/keys" in r.url and "kind=metrics" in r.url):
        page.click("text=Columns")
    expect(page.locator('input[data-col="m:signal"]')).to_have_count(1)
    page.fill("input.filter", "")
    page.keyboard.press("Enter")
    # A metric and a param column.
    page.check('input[data-col="m:acc"]')
    page.check('input[data-col="p:lr"]')
    expect(page.locator("table.runs thead th", has_text="acc")).to_have_count(1)
    # Sort by the metric, descending then ascending (server-side: order_by).
    with page.expect_request(lambda r: "runs/search" in r.url and "metrics.`acc` DESC" in (r.post_data or "")):
        page.click("table.runs thead th button:has-text('acc')")
    expect(page.locator("table.runs tbody tr[data-run-id]").first).to_contain_text("parent")
    page.click("table.runs thead th button:has-text('acc')")
    expect(page.locator("table.runs tbody tr[data-run-id]").first.locator("td.name")).to_contain_text("solo")
    shot(page, "runs-columns-sorted")
    # The URL reproduces the view in a fresh page.
    url = page.url
    assert "cols=" in url and "order=" in url, url
    page.goto("about:blank")
    page.goto(url)
    expect(page.locator("table.runs thead th", has_text="lr")).to_have_count(1)
    expect(page.locator("table.runs thead th[aria-sort=ascending]")).to_contain_text("acc")


def test_a_late_answer_to_an_older_filter_does_not_replace_the_newer_one(page, data):
    """Filters typed one after the other: the first search's answer is held back until the
    second's is shown, then let through; the table keeps the second filter's runs."""
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("table.runs tbody tr[data-run-id]").first).to_be_visible()
    older = "params.optimizer = 'sgd'"
    held = []

    def hold_the_older(route):
        if json.loads(route.request.post_data or "{}").get("filter") == older and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/runs/search", hold_the_older)
    page.fill("input.filter", older)
    page.keyboard.press("Enter")
    while not held:
        page.wait_for_timeout(20)
    page.fill("input.filter", "attributes.run_name = 'solo'")
    page.keyboard.press("Enter")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(1)
    with page.expect_response(lambda r: r.request is held[0].request):
        held[0].continue_()
    # Give the page a turn of its event loop to handle that answer (a script of its own).
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 200))")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(1)
    assert runs_table_names(page) == ["solo"]


def test_keyset_paging_never_loads_all_runs(page, data):
    requests: list[dict] = []
    page.on("request", lambda r: requests.append(json.loads(r.post_data)) if "runs/search" in r.url else None)
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("table.runs tbody tr[data-run-id]").first).to_be_visible()
    assert requests and all(0 < r["max_results"] <= 100 for r in requests), requests


def test_run_page_shows_params_metrics_tags_and_a_drawn_chart(page, data):
    rid = data.runs["parent"]
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{rid}")
    expect(page.locator("h1")).to_have_text("parent")
    expect(page.locator("table.params")).to_contain_text("optimizer")
    expect(page.locator("table.params")).to_contain_text("adam")
    expect(page.locator("table.metrics")).to_contain_text("acc")
    expect(page.locator("table.kv").first).to_contain_text("child-a")
    expect(page.locator("table.kv").first).to_contain_text("ui-model v1")
    expect(page.locator("table.kv").first).to_contain_text(data.experiment_name)
    canvas = page.locator('.chart[data-metric="acc"] canvas').first
    expect(canvas).to_be_visible()
    expect(page.locator('.chart[data-metric="acc"] canvas')).not_to_have_js_property("width", 0)
    assert drawn_pixels(page, '.chart[data-metric="acc"] canvas') > 100
    # Tags: add, then delete.
    page.fill('section.panel:has(h2:text("Tags")) input[aria-label="Tag key"]', "reviewed")
    page.fill('section.panel:has(h2:text("Tags")) input[aria-label="Tag value"]', "yes")
    page.click('section.panel:has(h2:text("Tags")) button:text("Set tag")')
    expect(page.locator("table.tags")).to_contain_text("reviewed")
    assert MlflowClient(data.url).get_run(rid).data.tags["reviewed"] == "yes"
    page.click('button[aria-label="Delete tag reviewed"]')
    expect(page.locator("table.tags")).not_to_contain_text("reviewed")
    assert "reviewed" not in MlflowClient(data.url).get_run(rid).data.tags
    # Description: edited in place, stored as the run's mlflow.note.content.
    page.click('section.panel:has(h2:text("Description")) summary')
    page.fill('textarea[aria-label="Description"]', "A <b>baseline</b> run")
    page.click('section.panel:has(h2:text("Description")) button:text("Save")')
    expect(page.locator("p.description")).to_have_text("A <b>baseline</b> run")
    assert MlflowClient(data.url).get_run(rid).data.tags["mlflow.note.content"] == "A <b>baseline</b> run"
    shot(page, "run")


def test_artifact_previews(page, data):
    rid = data.runs["parent"]
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{rid}")
    tree = page.locator(".tree")
    expect(tree).to_contain_text("table.csv")

    def open_file(path: str):
        page.click(f'.tree-item.file[data-path="{path}"]')

    open_file("table.csv")
    expect(page.locator("table.csv tbody tr")).to_have_count(2)
    expect(page.locator("table.csv")).to_contain_text("beta, with comma")
    open_file("config.json")
    expect(page.locator(".text-preview")).to_contain_text('"dropout": 0.1')
    open_file("params.yaml")
    expect(page.locator(".text-preview")).to_contain_text("epochs: 3")
    open_file("red.png")
    expect(page.locator(".artifact-img")).to_have_js_property("naturalWidth", 4)
    open_file("report.html")
    frame = page.locator("iframe.html-preview")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("iframe.html-preview").locator("h1")).to_have_text("Report")
    page.click('.tree-item.dir:has-text("model")')
    open_file("model/MLmodel")
    expect(page.locator(".mlmodel")).to_contain_text("sklearn")
    expect(page.locator("table.signature").first).to_contain_text("sepal_length")
    expect(page.locator("table.signature").nth(1)).to_contain_text("int64")
    shot(page, "run-artifacts")
    assert page.evaluate("window.__xss") is None


def test_a_long_history_reaches_the_browser_downsampled_by_the_server(page, data):
    rid = data.runs["long-history"]
    chart = '.chart[data-metric="signal"]'
    answers: list[dict] = []
    page.on("response", lambda r: answers.append(r.json()) if "get-history-downsampled" in r.url else None)
    with page.expect_request(lambda r: "cairn/metrics/get-history-downsampled" in r.url and "buckets=" in r.url):
        page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{rid}")
    status = page.locator(f"{chart} .small")
    expect(status).to_contain_text("points shown")
    shown = int(re.search(r"(\d+) points", status.inner_text()).group(1))
    width = page.eval_on_selector(f"{chart} .plot", "e => e.clientWidth")
    # At most a minimum and a maximum per pixel column, and the one-step spike is among them.
    assert 0 < shown <= 2 * width < BIG_HISTORY, (shown, width)
    points = [m for a in answers for m in a.get("metrics", [])]
    assert any(m["step"] == SPIKE_STEP and m["value"] == SPIKE_VALUE for m in points), "spike lost"
    assert drawn_pixels(page, f"{chart} canvas") > 100
    # Log scale and smoothing redraw the chart.
    page.check(f'{chart} input[aria-label="Log scale"]')
    assert drawn_pixels(page, f"{chart} canvas") > 100
    page.locator(chart).scroll_into_view_if_needed()
    shot(page, "chart-long-history")
    over = page.locator(f"{chart} .u-over").bounding_box()
    y = over["y"] + over["height"] / 2

    def drag(a: float, b: float) -> None:
        page.mouse.move(over["x"] + over["width"] * a, y)
        page.mouse.down()
        page.mouse.move(over["x"] + over["width"] * b, y, steps=5)
        page.mouse.up()

    # Zooming (a drag over the plot) asks the server for the zoomed steps only.
    with page.expect_request(lambda r: "get-history-downsampled" in r.url and "x_axis=step" in r.url and "min_x=" in r.url):
        drag(0.2, 0.3)
    expect(status).to_contain_text("steps ")
    zoomed = re.search(r"steps (\d+)–(\d+)", status.inner_text())
    lo, hi = int(zoomed.group(1)), int(zoomed.group(2))
    assert 0 < lo < hi < BIG_HISTORY - 1, (lo, hi)
    assert drawn_pixels(page, f"{chart} canvas") > 100
    # Double-click goes back to the whole history.
    page.dblclick(f"{chart} .u-over")
    expect(status).not_to_contain_text("steps ")
    # Time axes: wall time and relative time draw; a zoom on a time axis asks for timestamps.
    page.select_option(f'{chart} select[aria-label="X axis"]', "time")
    assert drawn_pixels(page, f"{chart} canvas") > 100
    with page.expect_request(lambda r: "get-history-downsampled" in r.url and "x_axis=timestamp" in r.url and "max_x=" in r.url):
        drag(0.4, 0.6)
    expect(status).to_contain_text(" – ")
    assert drawn_pixels(page, f"{chart} canvas") > 100
    page.select_option(f'{chart} select[aria-label="X axis"]', "relative")
    assert drawn_pixels(page, f"{chart} canvas") > 100
    page.dblclick(f"{chart} .u-over")
    expect(status).not_to_contain_text(" – ")
    shot(page, "chart-relative-time")


def test_compare_highlights_differences_and_draws_plots(page, data):
    ids = [data.runs["child-a"], data.runs["child-b"], data.runs["solo"]]
    page.goto(f"{data.url}/#/compare-runs?runs={quote(json.dumps(ids))}&experiments={quote(json.dumps([data.experiment_id]))}")
    expect(page.locator("h1")).to_have_text("Comparing 3 runs")
    expect(page.locator('tr[data-key="param:lr"]')).to_have_class(re.compile("differs"))
    expect(page.locator('tr[data-key="param:optimizer"]')).to_have_class(re.compile("differs"))
    page.check('input[aria-label="Only differences"]')
    expect(page.locator('tr[data-key="param:lr"]')).to_be_visible()
    assert drawn_pixels(page, "canvas.parallel") > 100
    expect(page.locator(".scatter canvas")).to_have_count(1)
    expect(page.locator('.chart[data-metric="acc"] .u-legend')).to_contain_text("child-a")
    shot(page, "compare")


def test_selecting_runs_in_the_table_opens_compare(page, data):
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    for name in ("child-a", "solo"):
        page.check(f'table.runs tr[data-run-id="{data.runs[name]}"] input[type=checkbox]')
    page.click("button:has-text('Compare (2)')")
    expect(page.locator("h1")).to_have_text("Comparing 2 runs")


def test_model_registry_pages_and_actions(page, data):
    client = MlflowClient(data.url)
    page.goto(f"{data.url}/#/models")
    row = page.locator(f'tr[data-model="{data.model}"]')
    expect(row).to_contain_text("@champion")
    shot(page, "models")
    row.locator("a").first.click()
    expect(page.locator("h1")).to_have_text(data.model)
    expect(page.locator("table.versions tbody tr")).to_have_count(2)
    # Set an alias on version 2, then delete it.
    page.fill('input[aria-label="Alias name"]', "challenger")
    page.select_option('select[aria-label="Alias version"]', "2")
    page.click("button:has-text('Set alias')")
    expect(page.locator('.chip[data-alias="challenger"]')).to_be_visible()
    assert client.get_model_version_by_alias(data.model, "challenger").version == "2"
    page.click('button[aria-label="Delete alias challenger"]')
    expect(page.locator('.chip[data-alias="challenger"]')).to_have_count(0)
    assert "challenger" not in client.get_registered_model(data.model).aliases
    # Stage transition.
    page.select_option('select[aria-label="Stage of version 2"]', "Production")
    expect(page.locator('select[aria-label="Stage of version 2"]')).to_have_value("Production")
    page.wait_for_function("true")
    for _ in range(50):
        if client.get_model_version(data.model, "2").current_stage == "Production":
            break
        page.wait_for_timeout(100)
    assert client.get_model_version(data.model, "2").current_stage == "Production"
    shot(page, "model")
    # The version page by deep link.
    page.goto(f"{data.url}/#/models/{data.model}/versions/1")
    expect(page.locator("h1")).to_have_text(f"{data.model} — version 1")
    expect(page.locator(".chip[data-alias=champion]")).to_be_visible()
    expect(page.locator('select[aria-label="Stage of version 1"]')).to_have_value("Staging")
    shot(page, "model-version")


def test_experiment_create_rename_delete_restore(page, data):
    client = MlflowClient(data.url)
    answers = iter(["ui-created", "ui-renamed"])
    page.on("dialog", lambda d: d.accept(next(answers)) if d.type == "prompt" else d.accept())
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    page.click("button:has-text('+ New')")
    expect(page.locator("h1")).to_have_text("ui-created")
    exp = client.get_experiment_by_name("ui-created")
    assert exp is not None
    expect(page.locator("table.runs")).to_contain_text("No runs in this experiment yet.")
    page.click('button[aria-label="Rename ui-created"]')
    expect(page.locator(".exp-list")).to_contain_text("ui-renamed")
    assert client.get_experiment(exp.experiment_id).name == "ui-renamed"
    page.click('button[aria-label="Delete ui-renamed"]')
    expect(page.locator(".exp-list")).not_to_contain_text("ui-renamed")
    assert client.get_experiment(exp.experiment_id).lifecycle_stage == "deleted"
    page.check("text=show deleted")
    page.locator(".exp-list li.deleted", has_text="ui-renamed").locator("button[title=Restore]").click()
    expect(page.locator(".exp-list li:not(.deleted)", has_text="ui-renamed")).to_have_count(1)
    assert client.get_experiment(exp.experiment_id).lifecycle_stage == "active"


def test_user_strings_stay_text(page, data):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("table.runs")).to_contain_text(XSS_NAME)
    page.click("text=Columns")
    page.check('input[data-col="t:note"]')
    expect(page.locator("table.runs")).to_contain_text(XSS_TAG)
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{data.runs['xss']}")
    expect(page.locator("h1")).to_have_text(XSS_NAME)
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{data.runs['parent']}")
    expect(page.locator(".tree")).to_contain_text(XSS_ARTIFACT)
    page.click(f'.tree-item.file:has-text("{XSS_ARTIFACT}")')
    expect(page.locator(".text-preview")).to_have_text("xss file")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src=x]").count() == 0
    assert not dialogs


def test_deep_links_the_client_prints_open_their_pages(page, data):
    rid = data.runs["solo"]
    # The link `mlflow` prints after a run ("View run ... at: <url>/#/experiments/<id>/runs/<id>").
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}/runs/{rid}")
    expect(page.locator("h1")).to_have_text("solo")
    page.goto(f"{data.url}/#/experiments/{data.experiment_id}")
    expect(page.locator("h1")).to_have_text(data.experiment_name)
    page.goto(f"{data.url}/#/models/{data.model}")
    expect(page.locator("h1")).to_have_text(data.model)
    page.goto(f"{data.url}/#/nowhere")
    expect(page.locator("h1")).to_have_text("Not found")


def test_the_ui_works_under_a_static_prefix(browser, data, tmp_path):
    from helpers import ServerProcess

    process = ServerProcess(tmp_path, name="prefixed", extra_args=["--static-prefix", "/mlflow"])
    process.url += "/mlflow"  # /health, like every route, lives under the prefix
    try:
        process.wait_healthy()
        client = MlflowClient(process.url)
        exp = client.create_experiment("under-prefix")
        client.create_run(exp, run_name="prefixed-run")
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.goto(f"{process.url}/#/experiments/{exp}")
        expect(page.locator("h1")).to_have_text("under-prefix")
        expect(page.locator("table.runs")).to_contain_text("prefixed-run")
        # A state change from the page goes through the prefixed API and its checks.
        page.on("dialog", lambda d: d.accept("made-in-prefixed-ui"))
        page.click("button:has-text('+ New')")
        expect(page.locator("h1")).to_have_text("made-in-prefixed-ui")
        assert client.get_experiment_by_name("made-in-prefixed-ui") is not None
        context.close()
    finally:
        assert process.terminate() == 0


def test_runs_are_deleted_and_restored_from_the_table(page, data):
    client = MlflowClient(data.url)
    exp = client.create_experiment("ui-delete-restore")
    keep = client.create_run(exp, run_name="keep").info.run_id
    gone = client.create_run(exp, run_name="to-delete").info.run_id
    page.on("dialog", lambda d: d.accept())
    page.goto(f"{data.url}/#/experiments/{exp}")
    page.check(f'tr[data-run-id="{gone}"] input[type=checkbox]')
    page.click("button:text-is('Delete')")
    expect(page.locator(f'tr[data-run-id="{gone}"]')).to_have_count(0)
    expect(page.locator(f'tr[data-run-id="{keep}"]')).to_have_count(1)
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    # The deleted runs view, then Restore.
    page.check("text=deleted runs")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(1)
    page.check(f'tr[data-run-id="{gone}"] input[type=checkbox]')
    page.click("button:text-is('Restore')")
    expect(page.locator(f'tr[data-run-id="{gone}"]')).to_have_count(0)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    page.uncheck("text=deleted runs")
    expect(page.locator("table.runs tbody tr[data-run-id]")).to_have_count(2)


def test_the_ui_works_with_basic_auth(browser, tmp_path, monkeypatch):
    """`cairn server --app-name basic-auth`: the browser sends the credentials (the UI's own
    reads — column keys, downsampled histories — go through the auth rules too); without them
    the API answers 401."""
    from helpers import ServerProcess

    admin = ("admin", "admin-password-ui-test")
    env = {
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "CAIRN_AUTH__DATABASE_URI": f"sqlite:///{tmp_path / 'auth.db'}",
    }
    process = ServerProcess(tmp_path, name="auth", env=env, extra_args=["--app-name", "basic-auth"])
    try:
        process.wait_healthy()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin[1])
        client = MlflowClient(process.url)
        exp = client.create_experiment("behind-auth")
        rid = client.create_run(exp, run_name="authed-run").info.run_id
        client.log_batch(rid, metrics=[Metric("loss", 1.0 / (i + 1), 1_700_000_000_000 + i, i) for i in range(100)],
                         params=[Param("lr", "0.1")])
        # Without credentials: the API refuses.
        anonymous = browser.new_context(viewport=VIEWPORT)
        page = anonymous.new_page()
        answer = page.request.post(f"{process.url}/ajax-api/2.0/mlflow/experiments/search", data={"max_results": 10})
        assert answer.status == 401
        anonymous.close()
        # With them: the pages, the UI's own endpoints and a state change work.
        context = browser.new_context(viewport=VIEWPORT, http_credentials={"username": admin[0], "password": admin[1]})
        page = context.new_page()
        page.goto(f"{process.url}/#/experiments/{exp}")
        expect(page.locator("table.runs")).to_contain_text("authed-run")
        with page.expect_response(lambda r: "cairn/runs/keys" in r.url and r.status == 200):
            page.click("text=Columns")
        expect(page.locator('input[data-col="p:lr"]')).to_have_count(1)
        with page.expect_response(lambda r: "get-history-downsampled" in r.url and r.status == 200):
            page.goto(f"{process.url}/#/experiments/{exp}/runs/{rid}")
        expect(page.locator('.chart[data-metric="loss"] canvas')).not_to_have_js_property("width", 0)
        assert drawn_pixels(page, '.chart[data-metric="loss"] canvas') > 100
        page.on("dialog", lambda d: d.accept("made-behind-auth"))
        page.goto(f"{process.url}/#/experiments/{exp}")
        page.click("button:has-text('+ New')")
        expect(page.locator("h1")).to_have_text("made-behind-auth")
        assert client.get_experiment_by_name("made-behind-auth") is not None
        shot(page, "basic-auth")
        context.close()
    finally:
        assert process.terminate() == 0
