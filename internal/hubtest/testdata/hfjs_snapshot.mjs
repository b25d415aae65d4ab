// Downloads a repo from a hubtest server with @huggingface/hub
// (snapshotDownload), as TestHuggingFaceJSInterop runs it:
//   node hfjs_snapshot.mjs HUB_URL REPO CACHE_DIR [TOKEN]
// with HFJS_DIR pointing at a directory whose node_modules holds
// @huggingface/hub. Prints the snapshot directory on the last line.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const req = createRequire(process.env.HFJS_DIR.replace(/\/?$/, "/"));
const mod = await import(pathToFileURL(req.resolve("@huggingface/hub")).href);
const hub = mod.snapshotDownload ? mod : mod.default;
const [hubUrl, repo, cacheDir, token] = process.argv.slice(2);
const accessToken = token || undefined;
let n = 0;
for await (const f of hub.listFiles({ repo, hubUrl, recursive: true, accessToken })) n++;
console.log("listed", n);
const dir = await hub.snapshotDownload({ repo, hubUrl, cacheDir, accessToken });
console.log(dir);
