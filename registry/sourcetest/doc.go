// Package sourcetest is the conformance suite every registry.Source must
// pass (issue #3, item 6). A backend's test gives Run a Setup that loads
// the suite's fixture (Files) into a real instance of the backend — a
// directory, the Hugging Face test hub, a docker-registry, an OCI layout,
// the Databricks test server, an S3 server, Azurite — and says how to
// provoke the failures the backend has a notion of. Run then checks,
// through the Source interface only:
//
//   - resolve: the listing has exactly the fixture's files with their
//     sizes; every digest given is right (SHA256, and GitSHA1 where a
//     source gives git blob ids); when the harness says the source knows
//     digests, every file has one; two Resolves agree (same revision, same
//     files); the manifest validates.
//   - ranges: Open of the whole file, its start, middle and end, n < 0 from
//     the middle, a zero-length range (mid-file and at the very end), and
//     the same ranges read concurrently, all byte-exact; a range past the
//     end never yields bytes silently.
//   - not found: a file the source does not have, and a model it does not
//     have, fail with registry.ErrNotFound (and one line).
//   - permission denied: where the backend has the notion, the harness's
//     Denied call fails with registry.ErrForbidden or ErrUnauthorized;
//     otherwise the harness says why it does not apply (logged).
//   - cancellation: Open with a cancelled context fails with
//     context.Canceled (at Open or at the first Read), and cancelling while
//     a body is being read stops the read with an error instead of
//     delivering the rest (the harness paces the server so the body is
//     still in flight; see Backend.Pace).
//
// Secrets the harness names (tokens, passwords) must never appear in an
// error message.
//
// Design: the suite speaks only registry.Source so it cannot drift from the
// interface; the fixture is generated (seeded, deterministic) so no test
// data sits in git; the largest file is a little over 1 MiB so that a
// cancelled read is cancelled mid-body on every transport while the suite
// stays fast; failures that a backend cannot express are declared by the
// harness with a reason, never skipped silently.
package sourcetest
