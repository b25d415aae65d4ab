// Helpers of scripts/bench-pull.sh (JSON work, verification, the report), so
// the benchmark needs node but not jq or python.
//
//   node util.mjs plan TREE_JSON DRYRUN_NDJSON ENDPOINT REPO OUTDIR
//        writes OUTDIR/files.json, paths.txt, aria2.txt, curl.cfg; prints "NFILES BYTES"
//   node util.mjs verify DIR FILES_JSON
//        every file present, right size, right SHA-256 (LFS) or git blob id (others)
//   node util.mjs checksums SHA256SUM_OUTPUT FILES_JSON
//        sha256sum's "HEX  PATH" lines against the hub's LFS SHA-256s
//   node util.mjs sha256speed MIB          OpenSSL SHA-256 (node crypto) in memory, MB/s
//   node util.mjs report RUN_DIR OUT_JSON
//        prints one table per scenario, writes the results as JSON
import { createHash } from "node:crypto";
import { createReadStream, readFileSync, writeFileSync, statSync } from "node:fs";
import path from "node:path";

const [cmd, ...args] = process.argv.slice(2);

function die(msg) {
  console.error(`util.mjs ${cmd}: ${msg}`);
  process.exit(1);
}

function plan(treeFile, dryRunFile, endpoint, repo, outDir) {
  const tree = JSON.parse(readFileSync(treeFile, "utf8"));
  if (!Array.isArray(tree)) die(`tree listing is not an array: ${treeFile}`);
  const byPath = new Map(tree.filter((e) => e.type === "file").map((e) => [e.path, e]));
  const ev = readFileSync(dryRunFile, "utf8")
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => JSON.parse(l))
    .find((e) => e.event === "plan");
  if (!ev || !Array.isArray(ev.files)) die(`no "plan" event with files in ${dryRunFile}`);
  const files = ev.files.map((f) => {
    const t = byPath.get(f.path);
    if (!t) die(`${f.path}: selected by gptoss but not in the hub's tree listing`);
    if (t.size !== f.size) die(`${f.path}: size ${f.size} (gptoss) vs ${t.size} (tree)`);
    const out = { path: f.path, size: t.size };
    if (t.lfs) {
      out.sha256 = t.lfs.oid; // the hub's LFS SHA-256: what every tool must reproduce
      if (f.sha256 && f.sha256 !== t.lfs.oid) die(`${f.path}: sha256 differs between gptoss and the tree`);
    } else {
      out.gitSha1 = t.oid;
    }
    return out;
  });
  const url = (p) => `${endpoint}/${repo}/resolve/main/${p.split("/").map(encodeURIComponent).join("/")}`;
  writeFileSync(path.join(outDir, "files.json"), JSON.stringify({ revision: ev.revision, files }, null, 1));
  writeFileSync(path.join(outDir, "paths.txt"), files.map((f) => f.path).join("\n") + "\n");
  writeFileSync(path.join(outDir, "aria2.txt"), files.map((f) => `${url(f.path)}\n  out=${f.path}\n`).join(""));
  writeFileSync(
    path.join(outDir, "curl.cfg"),
    files.map((f) => `url = "${url(f.path)}"\noutput = "${f.path}"\n`).join(""),
  );
  const bytes = files.reduce((a, f) => a + f.size, 0);
  console.log(`${files.length} ${bytes}`);
}

function hashFile(file, algo, prefix) {
  return new Promise((resolve, reject) => {
    const h = createHash(algo);
    if (prefix) h.update(prefix);
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on("data", (b) => h.update(b))
      .on("error", reject)
      .on("end", () => resolve(h.digest("hex")));
  });
}

async function verify(dir, filesJson) {
  const { files } = JSON.parse(readFileSync(filesJson, "utf8"));
  const bad = [];
  await Promise.all(
    files.map(async (f) => {
      const p = path.join(dir, f.path);
      let st;
      try {
        st = statSync(p); // follows symlinks (the huggingface.js cache)
      } catch {
        bad.push(`${f.path}: missing`);
        return;
      }
      if (st.size !== f.size) {
        bad.push(`${f.path}: size ${st.size}, want ${f.size}`);
        return;
      }
      if (f.sha256) {
        const got = await hashFile(p, "sha256");
        if (got !== f.sha256) bad.push(`${f.path}: sha256 ${got}, want ${f.sha256}`);
      } else {
        const got = await hashFile(p, "sha1", `blob ${f.size}\0`);
        if (got !== f.gitSha1) bad.push(`${f.path}: git blob id ${got}, want ${f.gitSha1}`);
      }
    }),
  );
  if (bad.length) die(`${dir}:\n  ${bad.join("\n  ")}`);
}

function checksums(sumFile, filesJson) {
  const { files } = JSON.parse(readFileSync(filesJson, "utf8"));
  const got = new Map();
  for (const line of readFileSync(sumFile, "utf8").split("\n")) {
    const m = /^([0-9a-f]{64}) [ *](.*)$/.exec(line);
    if (m) got.set(m[2].replace(/^\.\//, ""), m[1]);
  }
  const bad = files
    .filter((f) => f.sha256 && got.get(f.path) !== f.sha256)
    .map((f) => `${f.path}: sha256sum says ${got.get(f.path) ?? "nothing"}, want ${f.sha256}`);
  if (bad.length) die(bad.join("\n  "));
}

function sha256speed(mib) {
  const buf = Buffer.alloc(64 << 20, 7);
  const n = Math.max(1, Math.round(mib / 64));
  createHash("sha256").update(buf).digest(); // warm up
  const t0 = process.hrtime.bigint();
  const h = createHash("sha256");
  for (let i = 0; i < n; i++) h.update(buf);
  h.digest();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(((n * buf.length) / s / 1e6).toFixed(0));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function readTsv(file) {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => l.split("\t"));
  } catch {
    return [];
  }
}

// RUN_DIR holds what bench-pull.sh wrote: raw.tsv (scenario rep tool seconds
// sync_seconds status), scenarios.tsv (name description), tools.tsv (id
// command), ceilings.tsv (name value), meta.tsv (key value).
function report(runDir, outFile) {
  const meta = Object.fromEntries(readTsv(path.join(runDir, "meta.tsv")));
  for (const k of ["bytes", "nfiles", "reps"]) meta[k] = +meta[k];
  const toolRows = readTsv(path.join(runDir, "tools.tsv"));
  const commands = Object.fromEntries(toolRows);
  const toolOrder = toolRows.map((r) => r[0]);
  const ceilings = Object.fromEntries(readTsv(path.join(runDir, "ceilings.tsv")));
  const rows = readTsv(path.join(runDir, "raw.tsv")).map(([scenario, rep, tool, seconds, syncSeconds, status]) => ({
    scenario,
    rep: +rep,
    tool,
    seconds: +seconds,
    syncSeconds: +syncSeconds,
    status,
  }));
  const result = { ...meta, ceilings, scenarios: [] };
  let failed = false;
  for (const [scName, scDesc] of readTsv(path.join(runDir, "scenarios.tsv"))) {
    const scRows = rows.filter((r) => r.scenario === scName);
    if (!scRows.length) continue;
    const tools = toolOrder.filter((t) => scRows.some((r) => r.tool === t));
    const stats = tools.map((tool) => {
      const runs = scRows.filter((r) => r.tool === tool);
      const ok = runs.filter((r) => r.status === "ok");
      const st = {
        tool,
        command: commands[tool],
        runs: runs.map((r) => ({ rep: r.rep, seconds: r.seconds, syncSeconds: r.syncSeconds, status: r.status })),
        ok: ok.length === runs.length,
      };
      if (!st.ok) failed = true;
      if (ok.length) {
        st.medianSeconds = median(ok.map((r) => r.seconds));
        st.medianSecondsWithSync = median(ok.map((r) => r.seconds + r.syncSeconds));
        st.MBps = meta.bytes / st.medianSeconds / 1e6;
      }
      return st;
    });
    const base = stats.find((s) => s.tool === "gptoss");
    for (const s of stats) {
      if (base?.medianSeconds && s.medianSeconds) {
        s.ratio = s.medianSeconds / base.medianSeconds;
        s.ratioWithSync = s.medianSecondsWithSync / base.medianSecondsWithSync;
      }
    }
    result.scenarios.push({ name: scName, description: scDesc, tools: stats });

    const head = ["tool", "median s", "MB/s", "x gptoss", "s +sync", "x +sync", "runs (s)"];
    const f = (x, d) => (x === undefined ? "-" : x.toFixed(d));
    const lines = stats.map((s) => [
      s.tool,
      f(s.medianSeconds, 2),
      f(s.MBps, 0),
      f(s.ratio, 2),
      f(s.medianSecondsWithSync, 2),
      f(s.ratioWithSync, 2),
      s.runs.map((r) => (r.status === "ok" ? r.seconds.toFixed(2) : r.status)).join(" "),
    ]);
    const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const fmt = (cells) =>
      cells.map((c, i) => (i === 0 || i === 6 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ").trimEnd();
    console.log(`\n== ${scName}: ${scDesc}`);
    console.log(`   ${meta.nfiles} files, ${(meta.bytes / 1e9).toFixed(3)} GB, ${meta.reps} rep(s); medians of the ok runs`);
    console.log(fmt(head));
    for (const l of lines) console.log(fmt(l));
  }
  console.log(
    "\nx gptoss: tool median / gptoss median = how many times faster gptoss is (>1: gptoss faster)." +
      "\ns +sync:  the tool's time plus the `sync` right after it (bytes the tool left in the page cache).",
  );
  if (Object.keys(ceilings).length) {
    console.log("\n== machine ceilings (this run)");
    for (const [k, v] of Object.entries(ceilings)) console.log(`   ${k.padEnd(48)} ${v}`);
  }
  console.log("\n== commands");
  for (const [id, c] of toolRows) console.log(`   ${id.padEnd(18)} ${c}`);
  writeFileSync(outFile, JSON.stringify(result, null, 1) + "\n");
  console.log(`\nresults: ${outFile}`);
  if (failed) {
    console.log("SOME RUNS FAILED: see the runs column and the logs in " + runDir);
    process.exit(1);
  }
}

switch (cmd) {
  case "plan":
    plan(...args);
    break;
  case "verify":
    await verify(...args);
    break;
  case "checksums":
    checksums(...args);
    break;
  case "sha256speed":
    sha256speed(+args[0] || 1024);
    break;
  case "report":
    report(...args);
    break;
  default:
    die("unknown command");
}
