// Package s3 is the Amazon S3 backend (and any S3-compatible store:
// versitygw, MinIO, Ceph, R2 …): an objstore.Bucket built on
// aws-sdk-go-v2. Pulls and mirrors get their Source and Target from
// package objstore; this package only lists, reads ranges, heads and puts.
//
// Decisions:
//
//   - Locations are s3://bucket/prefix. Credentials come from the SDK's
//     default chain (environment, shared files and AWS_PROFILE, SSO, web
//     identity, ECS, EC2 IMDS). When the chain finds nothing, requests go
//     unsigned, so public buckets work without --no-sign-request (which
//     forces it); an access-denied answer then says that no credentials
//     were found and how to provide them. Credentials and the region are
//     settled at the first request, not in New, so a command that never
//     needs the bucket (an offline pull served from the cache) never
//     touches AWS or the instance metadata service.
//   - --endpoint / AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL select an
//     S3-compatible store, always spoken to path-style. On AWS the
//     bucket's region is discovered with one unsigned HEAD
//     (x-amz-bucket-region) unless --region is given; a wrong --region
//     gives an error naming the right one.
//   - Reads are ranged GetObjects with the SDK's retryer off: the fetch
//     engine retries from the offset it reached, with backoff and
//     Retry-After, and a doubled retry layer would only multiply waits.
//     The Content-Range must be the one asked for; bodies are
//     exact-length (registry.ExactReader).
//   - SDK checksums are off both ways (WhenRequired): gptoss verifies
//     every file's sha256, and S3's multipart checksums are not a file
//     hash anyway. The file's sha256 travels as x-amz-meta-sha256.
//   - Uploads up to the part size (64 MiB) are one PutObject; larger ones
//     a multipart upload whose parts (raised so at most 10 000 are
//     needed) go up 8 at a time through objstore.UploadParts, each part
//     retried on its own; any failure or interruption (Ctrl-C) aborts the
//     upload, so nothing is visible and no parts are left billed. Only a
//     kill -9 mid-upload leaves stored parts (never a visible object):
//     a bucket lifecycle rule AbortIncompleteMultipartUpload cleans them.
//     Files that completed are skipped when the mirror runs again.
//   - List HEADs every object (16 at a time) for its sha256 metadata:
//     S3 listings carry none, and a model prefix has a few dozen objects.
//   - Errors: the SDK's multi-part text is replaced by one line with the
//     location, the S3 error code and what to do; NoSuchBucket/NoSuchKey
//     wrap registry.ErrNotFound, rejected credentials (InvalidAccessKeyId,
//     SignatureDoesNotMatch, ExpiredToken …) registry.ErrUnauthorized,
//     AccessDenied registry.ErrForbidden (naming the s3: action the policy
//     must allow); every one is a *registry.HTTPError or Permanent so the
//     engine knows what to retry. Server messages are scrubbed of the
//     access key id; secrets never reach the SDK's error text.
package s3
