"""Driving the Dagster UI the way a person does, with Playwright and Debian's Chromium.

Locators are role- and text-based (labels, button names, visible text): the
UI's CSS class names are generated and change between Dagster releases.
Every page the test settles on goes through :meth:`Ui.check_page`, which
asserts that the canary secret is neither in the page's HTML nor in its
visible text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Locator, Page, ViewportSize, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: CI runs as root in a container. The rest keeps Chromium off the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}
GRAPH_VIEWPORT: ViewportSize = {"width": 1440, "height": 1350}
LOCATION = "da_sources"

# Reads the key -> value rows of the event's metadata table (nested tables, e.g. a column
# schema, belong to their row's value, so rows inside a cell are skipped).
_METADATA_ROWS_JS = """
() => {
  const rows = {};
  for (const row of document.querySelectorAll("tr")) {
    if (row.parentElement.closest("td")) continue;
    const cells = row.querySelectorAll(":scope > td");
    if (cells.length >= 2) rows[cells[0].innerText.trim()] = cells[1].innerText.trim();
  }
  return rows;
}
"""


@contextmanager
def chromium_page() -> Iterator[Page]:
    """A headless Chromium page (Debian's binary: nothing is ever downloaded)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} not found: install chromium: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@dataclass
class Ui:
    """The Dagster UI at ``url`` in ``page``; never shows ``secret``; screenshots go to ``artifacts``."""

    page: Page
    url: str
    secret: str
    artifacts: Path
    checked: list[str] = field(default_factory=list)  # the pages checked for the secret

    # --- pages and the secret ---------------------------------------------------

    def goto(self, path: str) -> None:
        self.page.set_viewport_size(VIEWPORT)  # the graph may have made it taller
        self.page.goto(self.url + path)

    def check_page(self) -> None:
        """The canary is in neither the HTML nor the visible text of the page as it is now."""
        where = self.page.url
        assert self.secret not in self.page.content(), f"the secret is in the HTML of {where}"
        assert self.secret not in self.page.inner_text("body"), f"the secret is visible on {where}"
        self.checked.append(where)

    def screenshot(self, name: str) -> Path:
        """A screenshot of the page as it is, after checking that no visible text holds the secret."""
        self.check_page()
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    # --- the asset graph --------------------------------------------------------

    def open_asset_graph(self, groups: list[str]) -> None:
        """The global asset lineage, every group expanded (groups start collapsed)."""
        self.goto("/asset-groups")
        for group in groups:
            self._group_header(group).wait_for()
        for group in groups:
            self._expand(group)
        # The expanded state is kept in the browser; a reload lays the whole graph out to fit
        # (in a taller window: three expanded groups do not fit in the usual one).
        self.page.set_viewport_size(GRAPH_VIEWPORT)
        self.page.reload()
        for group in groups:
            self._group_header(group).wait_for()
        for group in groups:  # a click made while the page was still busy may not have been kept
            self._expand(group)
        # each node loads its status on its own
        expect(self.page.get_by_text(re.compile(r"^Loading"))).to_have_count(0, timeout=30_000)
        self.page.wait_for_timeout(1000)  # the graph animates into place
        self.check_page()

    def _expand(self, group: str, attempts: int = 3) -> None:
        """Expand a group of the graph (a click on its title), checking that it took."""
        header = self._group_header(group)
        for _ in range(attempts):
            if not header.get_by_role("img", name="unfold_more").count():
                break
            header.get_by_text(group, exact=True).click()
            self.page.wait_for_timeout(500)
        header.get_by_role("img", name="unfold_less").wait_for()

    def _group_header(self, group: str) -> Locator:
        """The group's node in the graph: the innermost element with its name and its fold icon.

        The icon is ``unfold_more`` while the group is collapsed, ``unfold_less`` once expanded.
        """
        fold_icon = self.page.get_by_role("img", name=re.compile(r"^unfold_(more|less)$"))
        title = self.page.get_by_text(group, exact=True)
        return self.page.locator("div").filter(has=title).filter(has=fold_icon).last

    def group_assets(self, group: str, names: list[str]) -> list[str]:
        """Which of ``names`` the lineage view of one asset group shows."""
        self.goto(f"/locations/{LOCATION}/asset-groups/{group}")
        self.page.get_by_text("remote", exact=True).first.wait_for()
        self.page.get_by_text(names[-1], exact=True).first.wait_for()
        self.check_page()
        return [name for name in names if self.page.get_by_text(name, exact=True).count()]

    def upstream_of(self, asset_path: str, upstream: str) -> bool:
        """Whether the lineage graph of asset ``asset_path`` shows ``upstream`` (an asset's name) beside it."""
        self.goto(f"/assets/{asset_path}?view=lineage")
        self.page.get_by_text(upstream, exact=True).first.wait_for()
        self.check_page()
        return bool(self.page.get_by_text(upstream, exact=True).count())

    def partition_listed(self, asset_path: str, key: str) -> bool:
        """Whether the asset's Partitions tab lists ``key`` as it is (not percent-encoded)."""
        self.goto(f"/assets/{asset_path}?view=partitions")
        self.page.get_by_text(key, exact=True).first.wait_for()
        self.check_page()
        return True

    # --- materializing one item -------------------------------------------------

    def materialize_item(self, asset_path: str, partition_key: str, known_runs: set[str]) -> str:
        """Open a partitioned set's asset, click Materialize, pick (or add) the item's partition, launch.

        Returns the id of the launched run (from the toast's "View" link).
        """
        self.goto(f"/assets/{asset_path}")
        self.page.get_by_role("button", name="Materialize…").click()
        dialog = self.page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
        dialog.get_by_role("button", name=re.compile("^Launch")).wait_for()
        self._choose_partition(dialog, partition_key)
        dialog.get_by_text("1 partition", exact=True).wait_for()
        self.check_page()
        dialog.get_by_role("button", name="Launch 1 run").click()
        return self._launched_run(known_runs)

    def materialize_asset(self, asset_path: str, known_runs: set[str]) -> str:
        """Open an unpartitioned asset (a table, a set) and click Materialize; the launched run's id."""
        self.goto(f"/assets/{asset_path}")
        self.page.get_by_role("button", name=re.compile(r"Materialize$")).first.click()
        return self._launched_run(known_runs)

    def _choose_partition(self, dialog: Locator, key: str) -> None:
        """Type the item into the partition picker; select it, or add it when it is not a partition yet.

        The landing asset's partitions are dynamic: an item becomes a partition once
        a sync or the sensor has seen it, or when a person adds it here.
        """
        dialog.get_by_text("Select a partition or create one").click()
        self.page.keyboard.type(key)
        picker = self.page.get_by_role("dialog").filter(has_text="Add partition").filter(
            has_not_text="Launch runs to materialize")
        existing = picker.get_by_text(key, exact=True)
        existing.or_(picker.get_by_text("No matching partitions found")).first.wait_for()
        if existing.count():
            existing.first.click()
            self.page.keyboard.press("Escape")
            return
        picker.get_by_text("Add partition", exact=True).click()
        adder = self.page.get_by_role("dialog").filter(has_text="Add a partition for")
        adder.get_by_placeholder("name").fill(key)
        adder.get_by_role("button", name="Save").click()
        adder.wait_for(state="hidden")

    def _launched_run(self, known_runs: set[str], timeout: float = 30) -> str:
        """The run id behind the new "Launched run ... View" toast."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hrefs = [link.get_attribute("href") or ""
                     for link in self.page.get_by_role("link", name="View", exact=True).all()]
            new = {m.group(1) for h in hrefs if (m := re.match(r"/runs/([0-9a-f-]{36})", h))} - known_runs
            if len(new) == 1:
                known_runs.update(new)
                self.check_page()
                return new.pop()
            self.page.wait_for_timeout(200)
        raise AssertionError("no 'Launched run' toast with a link to the new run appeared")

    def run_page_shows_success(self, run_id: str) -> None:
        """The run's page shows it succeeded (the run header reads "Success")."""
        self.goto(f"/runs/{run_id}")
        self.page.get_by_text("Success", exact=True).first.wait_for(timeout=60_000)
        self.check_page()

    # --- what the asset page shows ----------------------------------------------

    def materialization_metadata(self, asset_path: str, partition_key: str | None = None) -> dict[str, str]:
        """The metadata of the latest materialization, as the asset's Events tab shows it."""
        self.goto(f"/assets/{asset_path}?view=events")
        if partition_key is not None:
            self.page.get_by_text(re.compile(rf"Partition {re.escape(partition_key)} materialized in run")).wait_for()
        self.page.get_by_text("dagster/uri", exact=True).wait_for()
        self.check_page()
        return dict(self.page.evaluate(_METADATA_ROWS_JS))

    def column_schema(self) -> list[tuple[str, str]]:
        """(name, type) of each column in the shown ``dagster/column_schema`` entry."""
        row = self.page.get_by_role("row").filter(has=self.page.get_by_text("dagster/column_schema", exact=True))
        columns = []
        for nested in row.first.get_by_role("row").all():
            cells = [text.strip() for text in nested.get_by_role("cell").all_inner_texts()]
            if len(cells) >= 2 and cells[0] != "Column name":  # not the header row
                columns.append((cells[0], cells[1]))
        return columns

    def resource_config(self, resource: str) -> str:
        """The text of a resource's page (its configuration table)."""
        self.goto(f"/locations/{LOCATION}/resources/{quote(resource)}")
        self.page.get_by_text("Configuration").first.wait_for()
        self.page.get_by_text("source_id", exact=True).wait_for()
        self.check_page()
        return self.page.inner_text("body")

    # --- sensors ----------------------------------------------------------------

    def start_sensor(self, sensor: str) -> None:
        """Toggle the sensor on in its page, as a person does, and see the switch on."""
        self.goto(f"/locations/{LOCATION}/sensors/{sensor}")
        running = self.page.get_by_role("row").filter(has_text="Running")
        switch = running.get_by_role("checkbox")
        switch.wait_for(state="attached")
        assert not switch.is_checked(), f"{sensor} is already running before the test started it"
        running.locator("label").click()  # the input itself is hidden behind the switch's drawing
        deadline = time.monotonic() + 15
        while not switch.is_checked() and time.monotonic() < deadline:
            self.page.wait_for_timeout(200)
        assert switch.is_checked(), f"the switch of {sensor} did not turn on"
        self.check_page()

    def sensor_runs_show(self, sensor: str, run_id: str, target: str) -> str:
        """The sensor's Runs tab lists ``run_id`` (of job ``target``) as succeeded; returns its row's text."""
        self.goto(f"/locations/{LOCATION}/sensors/{sensor}")
        self.page.get_by_role("button", name="Runs", exact=True).click()
        # The runs list is a grid of divs (no table roles): the run's row is the innermost
        # element holding both the run's short id and the target job's name.
        short_id = self.page.get_by_text(run_id[:8], exact=True)
        row = self.page.locator("div").filter(has=short_id).filter(has_text=target).last
        row.get_by_text("Success", exact=True).wait_for(timeout=60_000)
        self.check_page()
        return row.inner_text()
