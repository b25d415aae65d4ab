// Package hubtest is an in-process, protocol-faithful stand-in for the
// Hugging Face Hub, for tests and benchmarks of download clients.
//
// No emulator of the Hub exists, and the real one is not reachable from the
// test machines, so this package reproduces the part of the protocol that
// download clients (huggingface_hub, huggingface.js, gptoss' registry/hf)
// rely on, as documented in shared/PROTOCOLS.md §1:
//
//	GET  /api/models/{org}/{name}                      repo info at the default branch
//	GET  /api/models/{org}/{name}/revision/{rev}       repo info at rev (branch, "HEAD", commit)
//	     ?blobs=true adds size/blobId/lfs to siblings; ?expand=k selects fields
//	GET  /api/models/{org}/{name}/tree/{rev}[/{path}]  listing, ?recursive=, ?expand=,
//	     paginated by ?cursor= with an RFC 5988 `Link: <…>; rel="next"` header
//	POST /api/models/{org}/{name}/paths-info/{rev}     {paths, expand} as JSON or form
//	GET  /api/whoami-v2                                token check
//	HEAD|GET /{org}/{name}/resolve/{rev}/{path}        file metadata and content
//	HEAD|GET /{org}/{name}/raw/{rev}/{path}            git blob (LFS pointer for LFS files)
//
// Revisions in paths are single URL-encoded segments ("refs%2Fpr%2F1").
//
// # Repos and hashes
//
// AddRepo scans a directory (once; files must not change while served) and
// computes, per file, its size, sha256 and git blob id. A file is an LFS file
// when its base name matches *.safetensors, *.bin, *.gguf or *.pt, or it is
// larger than 10 MiB (both configurable). As on the Hub, the git blob of an
// LFS file is its pointer text ("version https://git-lfs…\noid sha256:…\nsize
// …\n"), so the "oid" of tree entries and the "blobId" of siblings is the
// pointer's sha1 for LFS files and sha1("blob <size>\x00"+content) for regular
// files; the content sha256 is in lfs.oid / lfs.sha256. The commit id is the
// hash of a real git commit object over a real git tree object of the
// directory (fixed author and date), so it is deterministic and changes
// whenever any file does. Branch "main" (or DefaultBranch) points at it;
// WithBranch / AddRevision serve further directories as other branches.
//
// # resolve and the CDN
//
// A regular file is served directly by the hub: 200 (206 for a Range) with
// X-Repo-Commit, ETag "<git sha1>", Accept-Ranges, Content-Length and
// Content-Disposition. An LFS file answers 302 with X-Repo-Commit,
// X-Linked-Etag "<sha256>", X-Linked-Size, ETag "<pointer git sha1>" and a
// Location on a second listener (the CDN: another port, optionally another
// host name via Options.CDNHost) carrying ?expires=&sig= (HMAC-SHA256 of the
// path and the other query parameters). The CDN answers 400 to any request
// with an Authorization header (a client must not forward the Hub token to a
// pre-signed URL), 403 to a bad or expired signature, and otherwise serves
// the bytes with ETag "<sha256>" and Accept-Ranges (no "X-Cache: … cloudfront":
// huggingface.js would then send its token to the CDN URL). Missing files
// are 404 X-Error-Code: EntryNotFound (with X-Repo-Commit), unknown repos 404
// RepoNotFound (the real Hub answers 401 to anonymous callers here; tests get
// the unambiguous 404), unknown revisions 404 RevisionNotFound. No
// xetHash / X-Xet-* is ever sent: clients use the plain LFS path.
//
// Ranges: one range per request, "bytes=a-b", "bytes=a-" or "bytes=-n"
// (including "bytes=0-0", which huggingface.js sends) gets 206 and
// Content-Range "bytes a-b/total"; an unsatisfiable one gets 416 with
// "bytes */total". A multi-range or malformed Range header is ignored and
// the whole file is sent with 200, as RFC 9110 allows; multipart/byteranges
// is never produced. If-Range with a different ETag also yields a 200.
// Bodies are never compressed, whatever Accept-Encoding says.
//
// # Access control
//
// Options.Tokens lists the valid tokens ("Authorization: Bearer T"); any
// other token is 401 "Invalid credentials in Authorization header" on every
// hub endpoint. Private repos answer 401 X-Error-Code: RepoNotFound without a
// token. Gated repos (metadata stays public, as on the Hub) answer resolve
// with 401 GatedRepo without a token and 403 GatedRepo ("Access to model X is
// restricted and you are not in the authorized list…") for a valid token that
// has not accepted the gate. The CDN checks only its signature.
//
// # Faults, rate and statistics
//
// Fault rules (Options.Faults, SetFaults, AddFault) are counted, not random:
// a rule with Count K fires on the first K requests it matches (optionally
// filtered by a path glob and endpoint kinds). Kinds: FaultDrop (reset the
// connection after N body bytes: the server waits until the peer has
// acknowledged those N bytes, then closes with SO_LINGER 0, so the client
// gets exactly N bytes and then ECONNRESET), FaultTruncate (full
// Content-Length, close cleanly after N bytes: unexpected EOF), FaultCorrupt
// (flip the byte at body offset N, same length), Fault503 (503 +
// Retry-After). A Probability with Options.Seed makes a rule random but
// reproducible. Options.Rate / SetRate caps each body
// response at a rate in bytes/s, paced in ~20 ms slices so it stays smooth
// (and cheap) at 50 MB/s × 16 connections; HeaderDelay delays every response.
// Stats reports requests per endpoint kind, responses per status, faults
// fired and, per file ("org/name/path"), body requests and body bytes
// handed to the kernel, so a test can assert how much a resumed download
// re-fetched; ResetStats zeroes them. Counters are updated before the bytes
// (and status lines) go out, so once a client has a complete response Stats
// already shows it; a client that aborts mid-body is charged for what its
// socket buffers had accepted.
//
// Interoperability: @huggingface/hub 2.17.5 (snapshotDownload, listFiles,
// modelInfo; gated repo, token, paginated tree, CDN redirects) downloads
// byte-identical snapshots; TestHuggingFaceJSInterop runs it when
// HUBTEST_HFJS_DIR names a directory with that npm package installed.
//
// Bodies are streamed from disk, never loaded in memory: with no fault and no
// rate cap a response goes through sendfile(2); otherwise through a pooled
// 1 MiB buffer.
//
// Start listens on Options.Addr / Options.CDNAddr (random loopback ports by
// default), so the same server backs cmd/gptoss-testhub.
package hubtest
