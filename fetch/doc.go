// Package fetch is the transfer engine every source shares: it moves the
// files of a registry.Manifest from a registry.Source into a cache.Store in
// parallel ranged parts, hashes them as they land, retries and resumes, and
// publishes a file only once its digests match. It knows no backend's
// protocol: a Source only opens byte ranges.
//
//	e := fetch.New(fetch.Options{Connections: 16, LimitRate: 50e6})
//	if _, err := e.Plan(m, store); err != nil { … }   // also done by Fetch
//	err := e.Fetch(ctx, src, m, store, func(ev fetch.Event) { … })
//	// then store.Commit(m, …): Fetch fills in m.Files[i].SHA256 but writes no manifest
//
// # Plan
//
// Plan lists what is missing: files that are not in the cache (by sha256, or
// by the alias of their git blob id), less the bytes that resumable partials
// already hold. It compares the disk space the download still has to take
// (file sizes less the blocks already allocated to their partials) with the
// free space of the cache's filesystem and refuses, with an error wrapping
// cache.ErrNoSpace that gives both numbers, before any byte is downloaded.
//
// # Scheduling
//
// Options.Connections workers share one queue of parts. Each file is cut into
// parts of Options.PartSize (auto: size/Connections clamped to [16 MiB,
// 256 MiB]). Files are admitted in manifest order, and a file's parts are
// queued in offset order, only while fewer parts than connections are
// waiting, so one file's written prefix grows from its start while the next
// file starts as soon as the current one no longer fills the connections.
// Small files therefore download many at a time, large ones many parts at a
// time.
//
// Before its parts are queued a file takes the inter-process lock
// "blob-<key>" (cache.Store.TryLock). If another process holds it, the file
// leaves the admission queue (so it holds no connection and does not delay the
// files after it), waits for the lock, and then usually finds the blob
// published and reports EventFileCached. Two concurrent pulls thus download
// each file once.
//
// # Partial files and keys
//
// A file downloads into partial/<key>.part, preallocated to its full size
// with fallocate (a full disk fails there, not midway; filesystems without
// fallocate get a sparse file). Workers write with WriteAt at the part's
// offset, from one buffer of 1 MiB per connection, so memory does not grow
// with file size. The key is the sha256 hex when the listing gives it, else
// "git-" + the git blob sha1, else "p-" + the first 40 hex digits of
// sha256("name|revision|path|size").
//
// # Hashing while downloading
//
// One goroutine per file reads the contiguous written prefix back from the
// .part file (ReadAt: the pages were just written and are in the page cache)
// and feeds it to SHA-256, and to SHA-1 over "blob <size>\x00"+content when
// the file has a GitSHA1. The prefix includes the written start of the first
// incomplete part, so hashing trails the download closely and, when the last
// part lands, only the tail remains to hash. Reading back costs about 5 %
// over hashing from memory (BenchmarkPrefixHash: 1.57 vs 1.67 GB/s) and keeps
// the hash exactly that of the bytes that get published, whatever order the
// parts complete in. When every byte is written and hashed, the size, the
// sha256 (against File.SHA256 when known) and the git sha1 are checked: a
// mismatch deletes the partial and its journal and fails with an error
// wrapping registry.ErrDigestMismatch (or ErrSizeMismatch) that gives the
// expected and actual digests; nothing is published. A match is published
// with cache.Store.Publish under the computed sha256, the journal is removed,
// and a file that has a GitSHA1 gets an alias (cache.Store.SetAlias) so a
// later listing that gives only the git id finds it.
//
// # Resume journal
//
// partial/<key>.journal, JSON, replaced atomically (cache.WriteFileAtomic):
//
//	{"version":1, "key":"…", "path":"model-00001-of-00002.safetensors",
//	 "size":4625017896, "partSize":268435456,
//	 "done":[[0,805306368],[1073741824,1090519040]],   // sorted [start,end) ranges on disk
//	 "hashed":805306368,                                // [0,hashed) is in the states below
//	 "sha256State":"<base64>", "gitSha1State":"<base64>"} // encoding.BinaryMarshaler of the hashers
//
// "done" is the union of every part's written prefix: only bytes for which
// WriteAt has returned, and the .part file is fdatasync'ed before each
// journal write, so the journal never claims a byte a crash or power cut
// could lose. It is written when a part completes (coalesced) and at most
// about once a second for in-flight progress, and once more when the run
// stops (ctx cancelled or another file failed) after every worker has
// stopped writing. After a kill -9 only the bytes written since the last
// journal write are downloaded again; the hashers resume from the saved
// states, so nothing already hashed is read again.
//
// # Files without a digest
//
// A file the source gives no digest for (an object-store prefix without
// gptoss-manifest.json, a plain directory) is keyed "p-…" and, once
// published, can be found again only by the sha256 computed as it landed,
// which the caller's commit writes into the manifest. Until then its
// journal stays as a finished record: no ranges, plus
//
//	"published":"<sha256 hex>", "source":"s3://…", "name":"…", "revision":"listing-…"
//
// (path and size as above). Plan and Fetch treat the file as cached when a
// record has the file's key (name, revision, path, size), the manifest's
// source and revision, and its blob exists with that size; so a rerun
// after a kill -9 between the last byte and the commit transfers nothing
// for it. The bytes were hashed as they landed, exactly as for a first
// pull; the record trusts the same identity a resumed partial already
// does, no more. Another source or revision, or a deleted blob, downloads
// the file again. Pull removes the records after its commit; gc --partial
// removes any left by Fetches that were never committed.
//
// A journal that is malformed, names another key or size, has overlapping
// ranges, a hashed offset beyond its written prefix or unreadable hash
// states, or whose .part file is missing or of the wrong size, is discarded
// with its partial; so is a partial without a journal. The ranges are
// explicit, so a journal stays valid when the part size changes between
// runs (other --connections): the missing ranges are simply cut into parts
// of the new size, and partSize is recorded for information only.
//
// # Retries and stalls
//
// Each part retries on its own. A failed request (an error from Open, a body
// that fails or ends early, a stall) is retried after an exponential backoff
// with full jitter (Options.Backoff doubling per attempt, capped at 30 s),
// or after the server's Retry-After if longer (capped at
// Options.MaxRetryAfter). The retry opens the range again at the offset the
// part reached: nothing already written is fetched again. The attempt count
// resets whenever a request brought bytes; after Options.MaxAttempts
// consecutive attempts without progress the Fetch fails. Waits select on the
// context. An error for which registry.IsPermanent holds (404, 401/403, a
// digest mismatch the source detected), a local write failure, or a full
// disk (an error wrapping cache.ErrNoSpace; the partial is kept) stops the
// whole Fetch at once: the other workers are cancelled and every file's
// journal is saved.
//
// A watchdog per request cancels the request's context when neither Open nor
// the body has produced a byte for Options.StallTimeout; the part is then
// retried like any failure. Sources must make Open and body reads honour
// the context (HTTP bodies do).
//
// # Straggler splitting
//
// When a worker finds no queued part and no file waiting to be admitted, it
// takes the in-flight part with the most unwritten bytes (at least 2 MiB)
// and splits it: the part's end moves to the middle of its unwritten range
// and the worker downloads the second half, while the first worker's request
// stops at the new end. The split never goes below the bytes the first
// worker may have read but not yet written (each Read reserves its range
// under the file's lock first), so no byte is written twice. A split part is
// an ordinary part for the journal (ranges) and for prefix hashing (the
// parts list stays ordered and gap-free). This keeps every connection busy
// at the end of a pull instead of waiting on the slowest stream, the
// "slows to a crawl at 99 %" of other tools.
//
// # Bandwidth, progress, errors
//
// Options.LimitRate caps the total rate with one token bucket
// (golang.org/x/time/rate) shared by every connection of every Fetch of the
// engine; reads are cut to its burst and wait for their bytes. Progress
// events are serialized (the callback need not be thread-safe), carry the
// aggregate Total/Done, and are throttled to 20 per second per file. Errors
// name the file ("download model-00001-of-00002.safetensors: …"). When ctx
// ends Fetch saves the journals and returns ctx.Err().
package fetch
