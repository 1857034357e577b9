// Bundles the web UI with esbuild's JS API (crates/ui/build.rs runs it; `node build.mjs <outdir>`).
// Writes <outdir>/app-<hash>.js, <outdir>/app-<hash>.css and <outdir>/manifest.json
// ({"js": name, "css": name}).
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdirSync, rmSync } from "node:fs";
import { basename, join } from "node:path";

const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node build.mjs <outdir>");
  process.exit(2);
}
// Type-check first (esbuild only strips types): a type error fails the build.
const tsc = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "."], { stdio: "inherit" });
if (tsc.status !== 0) {
  console.error("cairn-ui: TypeScript type check failed (above)");
  process.exit(1);
}
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const result = await build({
  entryPoints: { app: "web/src/main.ts" },
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  outdir,
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
  legalComments: "none",
});
const manifest = {};
for (const file of Object.keys(result.metafile.outputs)) {
  const name = basename(file);
  if (name.endsWith(".js")) manifest.js = name;
  if (name.endsWith(".css")) manifest.css = name;
}
writeFileSync(join(outdir, "manifest.json"), JSON.stringify(manifest));
