// Checks that src/gen is what `npm run generate` makes from ../../proto now:
// generates into a temporary directory and compares file by file.
// Exit status 0 when up to date, 1 (naming the files) when not.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = join(root, "node_modules", ".bin");
const committed = join(root, "src", "gen");

/** Every file under `dir`, as paths relative to it. */
function files(dir) {
  const found = [];
  const walk = (current) => {
    for (const entry of readdirSync(current)) {
      const path = join(current, entry);
      if (statSync(path).isDirectory()) {
        walk(path);
      } else {
        found.push(relative(dir, path));
      }
    }
  };
  walk(dir);
  return found.sort();
}

const out = mkdtempSync(join(tmpdir(), "tavern-gen-"));
try {
  const run = spawnSync(join(bin, "buf"), ["generate", "--output", out], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` },
  });
  if (run.status !== 0) {
    console.error(`buf generate failed (${run.error?.message ?? `status ${run.status}`}): run \`npm ci\` in clients/ts first`);
    process.exit(1);
  }
  const fresh = join(out, "src", "gen");
  const names = new Set([...files(committed), ...files(fresh)]);
  const stale = [...names].filter((name) => {
    try {
      return !readFileSync(join(committed, name)).equals(readFileSync(join(fresh, name)));
    } catch {
      return true; // missing on one side
    }
  });
  if (stale.length > 0) {
    console.error(`src/gen is out of date with proto/: ${stale.join(", ")}`);
    console.error("run `npm run generate` in clients/ts and commit src/gen");
    process.exit(1);
  }
  console.log(`src/gen is up to date with proto/ (${names.size} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
