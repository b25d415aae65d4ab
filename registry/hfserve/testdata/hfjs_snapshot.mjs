// Downloads a repo from `gptoss serve-hf` with @huggingface/hub, as
// TestHuggingFaceJS runs it:
//   node hfjs_snapshot.mjs HUB_URL REPO CACHE_DIR
// with HFJS_DIR pointing at a directory whose node_modules holds
// @huggingface/hub. Prints the snapshot directory on the last line.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const req = createRequire(process.env.HFJS_DIR.replace(/\/?$/, "/"));
const mod = await import(pathToFileURL(req.resolve("@huggingface/hub")).href);
const hub = mod.snapshotDownload ? mod : mod.default;
const [hubUrl, repo, cacheDir] = process.argv.slice(2);
let n = 0;
for await (const f of hub.listFiles({ repo, hubUrl, recursive: true })) n++;
console.log("listed", n);
const info = await hub.fileDownloadInfo({ repo, hubUrl, path: "config.json" });
console.log("info", info.size, info.etag);
const dir = await hub.snapshotDownload({ repo, hubUrl, cacheDir });
console.log(dir);
