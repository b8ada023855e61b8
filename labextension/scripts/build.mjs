// Bundles the frontend into ../nbflow/static: the anywidget module (widget.js +
// widget.css), the standalone renderer (dag.js + dag.css) for other pages, and
// the web UI the server serves at / (ui/index.html + ui/ui.js + ui/ui.css).
// Everything is bundled: nothing is fetched from a CDN at run time.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
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
  entryPoints: { widget: "src/widget/index.ts", dag: "src/dag/index.ts", "ui/ui": "src/ui/main.tsx" },
  outdir,
  bundle: true,
  format: "esm",
  target: ["es2022", "chrome111", "firefox113", "safari16.4"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: !dev,
  sourcemap: dev ? "inline" : false,
  legalComments: "eof",
  metafile: true,
  logLevel: "warning",
});
await mkdir(resolve(outdir, "ui"), { recursive: true });
await copyFile(resolve(root, "src/ui/index.html"), resolve(outdir, "ui/index.html"));

for (const [file, info] of Object.entries(result.metafile.outputs)) {
  console.log(`${file.replace(/^.*nbflow\/static/, "nbflow/static")}  ${(info.bytes / 1024).toFixed(1)} kB`);
}
