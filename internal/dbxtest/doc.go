// Package dbxtest is an in-process, protocol-faithful stand-in for the
// Databricks Files API over Unity Catalog volumes, for tests of
// registry/databricks and of `gptoss pull --from dbfs:/…` / `gptoss mirror
// --to dbfs:/…`. No emulator of Databricks exists; this package reproduces
// the part of the REST protocol that clients (the Databricks SDKs, the CLI,
// gptoss) use, as documented at docs.databricks.com/api/workspace/files:
//
//	GET    /api/2.0/fs/directories{path}   list: {"contents": [{path, is_directory,
//	       file_size, last_modified, name}], "next_page_token"}; ?page_size (default
//	       and maximum 1000), ?page_token (opaque; the other parameters must match)
//	HEAD   /api/2.0/fs/directories{path}   200 when the directory exists, else 404
//	PUT    /api/2.0/fs/directories{path}   mkdir -p (idempotent)
//	GET    /api/2.0/fs/files{path}         the bytes; one Range ("bytes=a-b", "a-",
//	       "-n") → 206 + Content-Range, unsatisfiable → 416 "bytes */size"
//	HEAD   /api/2.0/fs/files{path}         Content-Length, Content-Type, Last-Modified
//	PUT    /api/2.0/fs/files{path}?overwrite=true|false   single-shot upload, body =
//	       the file (at most Options.MaxPut, 5 GiB by default as on the service);
//	       parents are created; the file appears only once every byte arrived
//	DELETE /api/2.0/fs/files{path}, /api/2.0/fs/directories{path} (empty only)
//
// and the multipart upload the SDKs use for large files (files_ext in
// databricks-sdk-py, upload.go in databricks-sdk-go):
//
//	POST /api/2.0/fs/files{path}?action=initiate-upload[&overwrite=]
//	     → {"multipart_upload": {"session_token"}}
//	POST /api/2.0/fs/create-upload-part-urls {path, session_token,
//	     start_part_number, count, expire_time} → {"upload_part_urls": [{url,
//	     part_number, headers: [{name, value}]}]}
//	PUT  <presigned URL on the storage listener> body = one part → 200, ETag
//	POST /api/2.0/fs/files{path}?action=complete-upload&session_token=T
//	     {"parts": [{part_number, etag}]} → the file appears whole
//	POST /api/2.0/fs/create-abort-upload-url {path, session_token, expire_time}
//	     → {"abort_upload_url": {url, headers}}; DELETE on it drops the session
//
// Presigned URLs point at a second listener (StorageURL), as on the real
// service where they name the workspace's cloud bucket. Like S3 it refuses a
// request that also carries an Authorization header (400: a client must not
// send its workspace token to the storage host), answers 403 AccessDenied
// "Request has expired" to an expired or forged signature, and requires
// every part but the last to be at least Options.MinPart bytes (5 MiB by
// default) when the upload is completed.
//
// # Volumes, paths and access
//
// Files live on disk under Dir/<catalog>/<schema>/<volume>/…; AddVolume
// creates a volume, and tests may seed files by writing there directly. A
// path outside /Volumes/<catalog>/<schema>/<volume> is 400
// INVALID_PARAMETER_VALUE; a volume that does not exist is 404 NOT_FOUND
// ("Volume 'c.s.v' does not exist"); a missing file or directory 404
// NOT_FOUND. Errors are JSON {"error_code", "message"} as on the service.
//
// Every /api request needs "Authorization: Bearer T". Without one: 401
// UNAUTHENTICATED "Credential was not sent or was of an unsupported type
// for this API."; with an unknown token: 403 "Invalid access token." (what
// the service answers, error_code PERMISSION_DENIED here); a token in
// Options.ReadOnlyTokens may read and list but every write is 403
// PERMISSION_DENIED "User does not have WRITE VOLUME on Volume 'c.s.v'.";
// DenyRead makes every request on a volume 403 PERMISSION_DENIED "User does
// not have READ VOLUME on Volume 'c.s.v'.".
// The error code and message choices where the public docs are silent
// (413 for a PUT over MaxPut, the exact messages) are this package's.
//
// # Faults and statistics
//
// Fault rules are counted, not random, as in internal/hubtest: a rule with
// Count K fires on the first K requests it matches (a negative Count on
// every one), optionally filtered by a path glob (path.Match on the path
// inside the volume, or on the base name for a glob without "/") and by
// endpoint kinds. FaultDrop resets the connection after AfterBytes body
// bytes (the server waits until the peer has acknowledged them, then closes
// with SO_LINGER 0), FaultTruncate closes cleanly after AfterBytes with the
// full Content-Length announced, FaultCorrupt flips the body byte at
// AfterBytes, Fault503 answers 503 TEMPORARILY_UNAVAILABLE with
// Retry-After. Body faults match GET bodies of files longer than
// AfterBytes; 503 matches any request of the selected endpoints.
//
// Options.Rate / SetRate caps each file body at a rate in bytes/s, paced
// in ~20 ms slices (to interrupt a download half-way in a test).
//
// Stats counts requests per endpoint kind, responses per status, injected
// faults, body bytes and body requests per file (keyed by the volume path,
// "/Volumes/c/s/v/x"), and bytes received by uploads per file. Counters are
// updated before the bytes go out, so a client that has a complete response
// finds it in Stats.
package dbxtest
