// Package azure is the Azure Blob Storage backend: an objstore.Bucket for
// one container, on github.com/Azure/azure-sdk-for-go/sdk/storage/azblob.
// objstore builds the registry.Source (pull --from az://…) and the
// registry.Target (mirror --to az://…) on it; package fetch does the
// parallel ranged downloads, resume and streaming SHA-256.
//
// # URLs
//
//	az://ACCOUNT/CONTAINER/PREFIX[?SAS]
//	https://ACCOUNT.blob.core.windows.net/CONTAINER/PREFIX[?SAS]   (and the sovereign clouds)
//
// Account and container names are checked against Azure's rules before any
// request. A query string must be a SAS token (it has sig=). The service
// endpoint is Options.Endpoint (the CLI's --endpoint), else
// AZURE_STORAGE_BLOB_ENDPOINT, else the connection string's BlobEndpoint,
// else the https URL's host, else https://ACCOUNT.blob.core.windows.net. An
// endpoint on localhost or an IP address without a path is path-style, as
// Azurite is: http://127.0.0.1:10000 becomes http://127.0.0.1:10000/ACCOUNT.
//
// # Credentials, first match wins
//
//  0. none at all with Options.Anonymous (--no-sign-request): a container
//     with public read access; a private one is reported as not public;
//  1. a SAS token in the URL;
//  2. AZURE_STORAGE_CONNECTION_STRING (AccountKey or SharedAccessSignature;
//     its AccountName must be the URL's; UseDevelopmentStorage=true is
//     Azurite's default address and well-known key);
//  3. AZURE_STORAGE_SAS_TOKEN;
//  4. AZURE_STORAGE_KEY (shared key for the URL's account);
//  5. azidentity.DefaultAzureCredential: environment service principal,
//     workload identity, managed identity, az login. Azure AD tokens are
//     only sent over https, so an http endpoint with none of 1–4 is refused
//     up front with the list of variables to set.
//
// # Secrets never leave the process
//
// Errors are built from the service's status and x-ms-error-code plus our
// own one-line hint (never the response body, never the request URL, which
// carries the SAS); transport errors keep only the inner net error; and
// every message is finally scrubbed of the SAS token, its signature, the
// account key and the connection string (and any sig=/AccountKey= value)
// before it leaves the package, on download bodies too. AuthenticationFailed
// (Azure) and AuthorizationFailure (what Azurite answers for a bad key)
// say "wrong account key or SAS"; AuthorizationPermissionMismatch says which
// SAS permissions the operation needs (pull: sp=rl, mirror: sp=racwl);
// ContainerNotFound says how to create it. 401/403 map to exit 4, 404 to 3.
//
// # Listing
//
// One flat, paged List Blobs with metadata. Directory placeholders that
// accounts with a hierarchical namespace (ADLS Gen2) list as empty blobs
// with hdi_isfolder=true are skipped: they are not snapshot files, and
// "original" beside "original/config.json" would make the listing invalid.
// An Archive-tier blob cannot be read; the error says how to rehydrate it.
//
// # Downloads
//
// Open is one Get Blob with x-ms-range; the Content-Range is checked (a
// blob shorter than asked is a permanent size mismatch, another range a
// retryable error) and the body is wrapped in registry.ExactReader. The
// SDK retries a request three times, quickly (200 ms to 3 s, honouring
// Retry-After), before it has a response — so a throttled manifest read
// does not fail a pull; a body that breaks off is fetch's to resume, and
// blocks are retried only by objstore.UploadParts (SDK retries off), which
// sees every failure. The HTTP client keeps 128 idle
// connections per host, so 32 parallel ranges do not reconnect.
//
// # Uploads
//
// A file that fits in one block (64 MiB by default) is one Put Blob; a
// larger one is staged as parallel Put Block calls (8 per file by default,
// each retried on its own with backoff, honouring Retry-After) and made
// visible by one Put Block List — the blob appears only at that commit,
// atomically, replacing an older one. Block ids name content:
// "gptoss-<sha256[:24]>-<block size>-<index>" (the same length for every
// block, as Azure requires), so an interrupted upload's staged blocks are
// found again (Get Block List, uncommitted) and the next mirror of that
// file stages only the missing ones: a 60 GB file resumes. Two mirrors of
// the same file stage identical blocks, harmlessly. Azure drops
// uncommitted blocks after seven days.
// The block size is GPTOSS_AZURE_BLOCK_MB (1–4000, as azcopy's
// --block-size-mb; default 64) and grows only if a file would need more
// than 50 000 blocks. The file's sha256 goes into the blob metadata
// (x-ms-meta-gptoss_sha256; read back case-insensitively, and a plain
// "sha256" key is accepted too). Blob Content-MD5 is not used: Azure does
// not store one for block-list blobs (../shared/PROTOCOLS.md §3), and the
// manifest's sha256, checked as the bytes arrive, is the source of truth.
// Content-Type is set from the extension (application/json for *.json).
package azure
