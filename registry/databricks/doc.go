// Package databricks reads and writes model snapshots in Databricks Unity
// Catalog volumes through the Files API: `gptoss pull 20b --from
// dbfs:/Volumes/<catalog>/<schema>/<volume>/<path>` and `gptoss mirror 20b
// --to dbfs:/Volumes/…`.
//
// A volume is one objstore.Bucket (keys are paths inside the volume); the
// snapshot layout, the gptoss-manifest.json written last, which digests are
// trusted and skip-if-present all come from registry/objstore, so this
// package only speaks the protocol:
//
//	GET  /api/2.0/fs/directories{dir}?page_token=  list, one directory per call,
//	     walked recursively, every page followed (next_page_token)
//	GET  /api/2.0/fs/files{path} + Range           ranged reads (206, Content-Range checked)
//	HEAD /api/2.0/fs/files{path}                   size and Last-Modified (Head, Stat)
//	PUT  /api/2.0/fs/files{path}?overwrite=true    single-shot upload (files < 64 MiB)
//	POST …?action=initiate-upload, create-upload-part-urls, PUT to the presigned
//	     URL, …?action=complete-upload              multipart upload (larger files)
//
// # Decisions
//
//   - Credentials: DATABRICKS_HOST and DATABRICKS_TOKEN (a personal access
//     token, sent as "Authorization: Bearer"), else the [DEFAULT] profile
//     (or DATABRICKS_CONFIG_PROFILE) of ~/.databrickscfg (or
//     DATABRICKS_CONFIG_FILE), as the Databricks CLI and SDKs do. A host
//     without a scheme is https://; plain http:// is accepted only for
//     loopback addresses (tests), so a token never crosses a network in the
//     clear. The token is never printed: errors carry the server's
//     error_code and message and the URL path only.
//   - Uploads: the service takes at most 5 GiB in one PUT and gpt-oss-120b's
//     original/ shards are larger, so files of 64 MiB and more go up as the
//     SDKs do it (databricks-sdk-py FilesExt, databricks-sdk-go upload.go):
//     initiate-upload, one presigned part URL per part (minted afresh for
//     every attempt, so an expired URL is just a retry), parts of 64 MiB
//     (at least 5 MiB, at most 10 000 parts) in parallel through
//     objstore.UploadParts with per-part retries, then complete-upload with
//     the ETags in order. The presigned URL names the cloud bucket, so the
//     workspace token is never sent with it. A failed multipart upload is
//     aborted (create-abort-upload-url + DELETE). A workspace that refuses
//     multipart (501/404 on initiate-upload) gets a single-shot PUT when
//     the file fits in one (≤ 5 GiB), else one clear error.
//   - A PUT makes the file visible only when complete (server side), so a
//     mirror interrupted mid-file leaves no partial file under the final
//     name; the manifest is written last by objstore.Target.
//   - No object metadata exists in the Files API, so Object.SHA256 is
//     always empty: a prefix without gptoss-manifest.json is checked against
//     the catalog's known digests only (objstore). Object.ETag is the
//     file's last_modified, so a replaced file changes the listing revision.
//   - A 404 while listing is told apart: the volume itself missing ("volume
//     c.s.v does not exist or this token cannot see it", ErrNotFound) from
//     an empty or missing directory (an empty listing). 401, and 403
//     "Invalid access token", are ErrUnauthorized with a hint about
//     DATABRICKS_TOKEN; other 403s (PERMISSION_DENIED, e.g. a read-only
//     token used to mirror) are ErrForbidden.
//   - Listing, HEAD and single-shot PUTs are retried here (503/429/5xx and
//     network errors, honouring Retry-After, 4 attempts); ranged reads are
//     retried by package fetch, multipart parts by objstore.UploadParts.
//     Messages name files by their dbfs: path, not the API URL.
//
// Reference: https://docs.databricks.com/api/workspace/files
package databricks
