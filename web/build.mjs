// Bundles the pages into the folder named on the command line (dist/ by default):
// console.html, play.html, console.js, play.js and style.css. The Tavern server
// embeds that folder's files, so the bundle is committed; check-built.sh checks
// that it matches its sources.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));

/**
 * Resolves `pkg` (and its subpaths) from this package's node_modules wherever
 * it is imported, so that the bundle is the same whether or not clients/ts has
 * node_modules of its own.
 */
function fromHere(pkg) {
  const filter = new RegExp(`^${pkg.replace(/[/.]/g, "\\$&")}(/|$)`);
  return {
    name: `from-web:${pkg}`,
    setup(b) {
      b.onResolve({ filter }, (args) => {
        if (args.pluginData?.fromHere) return undefined;
        return b.resolve(args.path, { kind: args.kind, resolveDir: here, pluginData: { fromHere: true } });
      });
    },
  };
}

await mkdir(out, { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: { console: "src/console.ts", play: "src/play.ts" },
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  plugins: [fromHere("@bufbuild/protobuf")],
  logLevel: "warning",
});
for (const file of ["console.html", "play.html", "style.css"]) {
  await copyFile(join(here, "src", file), join(out, file));
}
