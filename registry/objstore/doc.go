// Package objstore is what every object-store backend (registry/s3,
// registry/azure, registry/databricks) shares: the Bucket interface a
// backend implements, and the registry.Source and registry.Target built
// once on top of it.
//
// # A backend is one Bucket
//
// List (recursive, all pages), Open (a byte range, exact length), Put (the
// whole object, in parallel parts or blocks, invisible until complete),
// Head and Describe. Everything else — what a snapshot under a prefix is,
// which digests to trust, skip-if-present, the manifest — lives here, so
// the three backends behave alike and one test of this package covers all
// of them. UploadParts is the shared parallel, per-part-retried upload
// loop (S3 multipart parts, Azure staged blocks).
//
// # Layout: one snapshot per prefix
//
// `gptoss mirror 20b --to s3://bucket/models/gpt-oss-20b` writes each file
// at models/gpt-oss-20b/<path> (the same relative paths as the Hugging Face
// repository, so `aws s3 ls`, `aws s3 cp --recursive` and vLLM's S3 loader
// see an ordinary snapshot), stores the file's sha256 in the object's
// metadata (x-amz-meta-sha256 on S3), and writes gptoss-manifest.json
// beside the files LAST: a registry.Manifest (name, revision, format,
// source, every file's path, size and sha256) plus "schemaVersion": 1. A
// prefix holds one model; mirroring a second format of the same revision
// merges the file lists (format "custom", pulls select their format from
// it); a new revision replaces the manifest (stale objects of the old one
// stay but are no longer part of the snapshot). Mirroring another model to
// a prefix that holds one is refused before any upload (Target.Prepare,
// which lists the manifest's key: that also turns a missing bucket or
// refused access into one clear error before the first byte goes up).
//
// # Why a manifest, and what is trusted
//
// An object store's own checksums are not the file's sha256: S3's
// multipart SHA-256 is a checksum of part checksums, Azure keeps no MD5 for
// block-list blobs (../shared/PROTOCOLS.md §3). So, in order:
//
//  1. gptoss-manifest.json, the source of truth. Every file it names must
//     be listed with its size; an object whose sha256 metadata disagrees
//     with it was replaced after the mirror and is refused before any
//     download. The bytes are checked against its sha256 as they arrive
//     (package fetch), so a corrupted object is caught and never published.
//  2. Without a manifest (a prefix filled by `aws s3 sync`), the object's
//     sha256 metadata if any, else the digest known for that model and path
//     (SourceOptions.Known: the registry catalog, and the CLI adds digests
//     of the same model verified by earlier pulls into the cache).
//  3. Otherwise the file is downloaded and hashed but cannot be checked
//     against anything: Source.Unchecked lists it, and the CLI says so in
//     one line after the pull.
//
// Keys under the prefix that are not clean relative paths ("dir/" markers,
// "a//b", "..") are not part of the snapshot. Target.Stat counts a file as
// present when its object has the same size and sha256 metadata, or, for a
// store or tool that keeps no metadata, when the existing manifest lists it
// with that sha256: a mirror trusts what it wrote. An object damaged behind
// its back keeps its metadata, so after a pull reports a digest mismatch,
// delete the object and mirror again.
//
// # Stable identities (resume)
//
// With a manifest, files are keyed by sha256, so an interrupted pull
// resumes from its partial files. Without one, the revision is
// "listing-" + 16 hex digits of the sha256 of every key, size, ETag and
// sha256 metadata of the prefix: unchanged objects give the same revision
// and the same partial-file keys (fetch keys digest-less files by
// name|revision|path|size), and a replaced object changes the revision, so
// a resume never splices bytes of two versions. A file that finished before
// the pull was killed is not fetched again either: fetch's finished record
// holds the sha256 its bytes had as they landed, for that revision.
//
// # Errors
//
// Backends wrap registry.ErrNotFound (bucket or key), ErrUnauthorized (no
// or bad credentials), ErrForbidden (refused) and carry *registry.HTTPError
// for retry decisions. Messages are one line and never contain
// credentials, signatures or SAS tokens.
package objstore
