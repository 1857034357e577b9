// Cairn's web UI: hash routes → pages.
import "./style.css";
import { current } from "./router";
import { h, clear } from "./dom";
import { experimentsPage } from "./experiments";
import { runPage } from "./run";
import { comparePage } from "./compare";
import { modelsPage, modelPage, versionPage } from "./models";

const root = document.getElementById("app")!;
let generation = 0;

async function route() {
  const gen = ++generation;
  const { parts, query } = current();
  // A page rendered for an older hash must not overwrite the newer one: each page renders into
  // its own element, attached only while it is the latest.
  const page = h("div", { class: "page" });
  clear(root, page);
  const [first, a, b, c, d] = parts;
  document.querySelectorAll("#top nav a").forEach((el) => el.classList.toggle("active", el.getAttribute("href") === `#/${first === "models" ? "models" : "experiments"}`));
  try {
    if (!first || first === "experiments") {
      if (a && b === "runs" && c) {
        document.title = "Run · Cairn";
        await runPage(page, a, c);
      } else {
        document.title = "Experiments · Cairn";
        await experimentsPage(page, a, query);
      }
    } else if (first === "compare-runs") {
      document.title = "Compare runs · Cairn";
      await comparePage(page, query);
    } else if (first === "models") {
      document.title = "Models · Cairn";
      if (a && b === "versions" && c) await versionPage(page, a, c);
      else if (a) await modelPage(page, a);
      else await modelsPage(page, query);
    } else {
      clear(page, h("h1", null, "Not found"), h("p", null, "No page at this address. ", h("a", { href: "#/" }, "Experiments")));
    }
  } catch (e) {
    if (gen === generation) clear(page, h("div", { class: "error" }, String(e)));
  }
  void d;
}

window.addEventListener("hashchange", route);
route();
