// Bundles the frontend into ../nbflow/static: the anywidget module (widget.js +
// widget.css), the standalone renderer (dag.js + dag.css) for other pages, and
// the web UI the server serves at / (ui/index.html + ui/ui.js + ui/ui.css).
// Everything is bundled: nothing is fetched from a CDN at run time.
//
// Then the prebuilt JupyterLab extension (src/lab): esbuild compiles it to
// lib/lab/index.js with JupyterLab's own packages left as imports, and
// @jupyterlab/builder turns that into a federated extension in
// ../nbflow/labextension (the wheel installs it as share/jupyter/labextensions/nbflow).
// The builder reads the installed jupyterlab's staging/package.json to know which
// packages JupyterLab shares; jupyterlab is a build requirement of the wheel.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const outdir = resolve(root, "../nbflow/static");
const labOutdir = resolve(root, "../nbflow/labextension");

if (process.argv.includes("--clean")) {
  await rm(outdir, { recursive: true, force: true });
  await rm(labOutdir, { recursive: true, force: true });
  await rm(resolve(root, "lib"), { recursive: true, force: true });
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

// -- the prebuilt JupyterLab extension -------------------------------------------

/** The interpreter a script on PATH runs with (its `#!` line), or undefined. */
function interpreterOf(script) {
  for (const dir of (process.env.PATH || "").split(delimiter)) {
    try {
      const [first, second = ""] = readFileSync(join(dir, script), "utf8").split("\n", 2);
      // pip writes `#!/bin/sh` and `'''exec' "PYTHON" "$0" "$@"` when the path is too long for `#!`.
      const long = /^'''exec' "([^"]+)"/.exec(second);
      if (long) return long[1];
      if (first.startsWith("#!")) return first.slice(2).trim().split(/\s+/)[0];
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** The installed jupyterlab's staging folder (its core package.json), from the Python that builds. */
function jupyterlabStaging() {
  if (process.env.NBFLOW_JUPYTERLAB_STAGING) return process.env.NBFLOW_JUPYTERLAB_STAGING;
  const code = "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))";
  const tried = [];
  // pip builds in an isolated environment: its interpreter is not on PATH, but the scripts of the
  // jupyterlab it installed for the build are, and their first line names that interpreter.
  const fromScripts = ["jupyter-lab", "jupyter-labextension"].map(interpreterOf);
  for (const python of [process.env.PYTHON, ...fromScripts, "python3", "python"].filter(Boolean)) {
    try {
      return execFileSync(python, ["-c", code], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
    } catch (err) {
      tried.push(`${python}: ${String(err.stderr || err.message).trim().split("\n").pop()}`);
    }
  }
  throw new Error(
    "the JupyterLab extension needs jupyterlab installed in the Python that builds nbflow " +
      "(pip install jupyterlab, or set NBFLOW_JUPYTERLAB_STAGING to its staging folder). Tried:\n  " +
      tried.join("\n  "),
  );
}

await build({
  absWorkingDir: root,
  entryPoints: { index: "src/lab/index.ts" },
  outdir: resolve(root, "lib/lab"),
  bundle: true,
  format: "esm",
  target: ["es2022"],
  // JupyterLab provides these at run time (the builder shares them): never bundled.
  external: ["@jupyterlab/*", "@lumino/*"],
  loader: { ".css": "text" },
  minify: false,
  legalComments: "eof",
  logLevel: "warning",
});
const builder = resolve(root, "node_modules/@jupyterlab/builder/lib/build-labextension.js");
const args = [builder, "--core-path", jupyterlabStaging()];
if (dev) args.push("--development");
execFileSync(process.execPath, [...args, root], { cwd: root, stdio: "inherit" });
// What `jupyter labextension list` shows as "(python, nbflow)".
await writeFile(
  resolve(labOutdir, "install.json"),
  JSON.stringify(
    {
      packageManager: "python",
      packageName: "nbflow",
      uninstallInstructions: "Use your Python package manager (pip, conda, etc.) to uninstall the package nbflow",
    },
    null,
    2,
  ) + "\n",
);
console.log("nbflow/labextension  (prebuilt JupyterLab extension)");
