// Bundles the frontend into ../nbflow/static: the anywidget module (widget.js +
// widget.css) and the standalone renderer (dag.js + dag.css) for other pages.
// Everything is bundled: nothing is fetched from a CDN at run time.
import { build } from "esbuild";
import { rm } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const outdir = resolve(root, "../nbflow/static");

if (process.argv.includes("--clean")) {
  await rm(outdir, { recursive: true, force: true });
  process.exit(0);
}

const dev = process.argv.includes("--dev");
const result = await build({
  absWorkingDir: root,
  entryPoints: { widget: "src/widget/index.ts", dag: "src/dag/index.ts" },
  outdir,
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox113", "safari16.4"],
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "eof",
  metafile: true,
  logLevel: "warning",
});

for (const [file, info] of Object.entries(result.metafile.outputs)) {
  console.log(`${file.replace(/^.*nbflow\/static/, "nbflow/static")}  ${(info.bytes / 1024).toFixed(1)} kB`);
}
