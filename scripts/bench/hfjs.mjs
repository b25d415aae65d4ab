// The @huggingface/hub (huggingface.js) peer of scripts/bench-pull.sh.
//
//   node scripts/bench/hfjs.mjs CACHE_DIR PATHS_FILE
//
// Downloads the files listed in PATHS_FILE (one repo path a line) of
// openai/gpt-oss-20b at main from $HF_ENDPOINT into the huggingface.js cache
// CACHE_DIR, and prints the snapshot folder on stdout.
//
// snapshotDownload() has no include filter, and the fixture repo also holds
// original/ and metal/, which gptoss does not fetch. So this does exactly what
// snapshotDownload() does (modelInfo for the commit, then downloadFileToCacheDir
// for each file, one after the other, in listing order) restricted to the same
// files gptoss pulls. BENCH_HFJS_SNAPSHOT=1 calls snapshotDownload() itself
// instead (whole repo: not comparable, for checking only).
//
// The library is loaded from .tools/npm (see scripts/bench-pull.sh), or from
// HFJS_MODULE (a path to its dist/index.mjs).
import { pathToFileURL, fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const modPath =
  process.env.HFJS_MODULE ||
  path.join(here, "..", "..", ".tools", "npm", "node_modules", "@huggingface", "hub", "dist", "index.mjs");
const hub = await import(pathToFileURL(modPath).href);

const [cacheDir, pathsFile] = process.argv.slice(2);
if (!cacheDir || !pathsFile) {
  console.error("usage: node hfjs.mjs CACHE_DIR PATHS_FILE");
  process.exit(2);
}
const hubUrl = process.env.HF_ENDPOINT;
if (!hubUrl) {
  console.error("hfjs.mjs: HF_ENDPOINT is not set");
  process.exit(2);
}
const repo = { type: "model", name: process.env.BENCH_REPO || "openai/gpt-oss-20b" };
const revision = "main";
// downloadFileToCacheDir logs every file with console.debug; keep stdout for the result.
console.debug = () => {};

if (process.env.BENCH_HFJS_SNAPSHOT === "1") {
  const dir = await hub.snapshotDownload({ repo, hubUrl, cacheDir, revision });
  console.log(dir);
  process.exit(0);
}

const paths = readFileSync(pathsFile, "utf8").split("\n").filter(Boolean);
// As snapshotDownload: pin the revision to its commit first.
const info = await hub.modelInfo({ name: repo.name, hubUrl, revision, additionalFields: ["sha"] });
const commit = info.sha;
if (!/^[0-9a-f]{40}$/.test(commit ?? "")) {
  console.error(`hfjs.mjs: no commit sha from modelInfo: ${JSON.stringify(info)}`);
  process.exit(1);
}
for (const p of paths) {
  // Returns CACHE/models--org--name/snapshots/COMMIT/PATH, a symlink into blobs/.
  await hub.downloadFileToCacheDir({ repo, path: p, revision: commit, hubUrl, cacheDir });
}
console.log(path.join(cacheDir, `models--${repo.name.replace("/", "--")}`, "snapshots", commit));
