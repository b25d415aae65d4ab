package azure

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/gptoss/gptoss/registry"
)

// fail turns an SDK error into gptoss's vocabulary: a *registry.HTTPError
// (status, the service's error code, one actionable line; never the
// service's body, never the request's query string) wrapping the sentinel
// the CLI maps onto an exit code. nil stays nil.
func (b *Bucket) fail(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	where := b.Describe()
	if key != "" {
		where += "/" + key
	}
	var re *azcore.ResponseError
	var ue *url.Error
	var af *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &re):
		he := &registry.HTTPError{Op: op, URL: where, Status: re.StatusCode, Code: re.ErrorCode}
		if re.RawResponse != nil {
			he.RetryAfter = registry.ParseRetryAfter(re.RawResponse.Header.Get("Retry-After"), time.Now(), time.Minute)
		}
		he.Message = b.hint(op, re)
		if bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.InvalidAuthenticationInfo, bloberror.NoAuthenticationInformation) {
			// 403 on the wire, but the credentials themselves are wrong.
			err = fmt.Errorf("%w (%w)", he, registry.ErrUnauthorized)
		} else {
			err = he
		}
	case errors.As(err, &af) || strings.Contains(err.Error(), "DefaultAzureCredential"):
		first, _, _ := strings.Cut(err.Error(), "\n")
		err = &registry.Permanent{Err: fmt.Errorf("%w: %s %s: no Azure credentials worked (set %s, %s or %s, put a SAS token in the URL, or sign in: az login, a managed identity, AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET): %s",
			registry.ErrUnauthorized, op, where, EnvConnectionString, EnvKey, EnvSASToken, first)}
	case errors.As(err, &ue):
		// The URL would carry the SAS: keep only what went wrong (a
		// *net.OpError stays inside, so it still reads as a network error).
		err = fmt.Errorf("%s %s: %w", op, where, ue.Err)
	default:
		err = fmt.Errorf("%s %s: %w", op, where, err)
	}
	return scrub(err, b.creds.secrets)
}

// hint is the one line that says what to do about a refused request.
func (b *Bucket) hint(op string, re *azcore.ResponseError) string {
	writing := strings.HasPrefix(op, "upload") || op == "commit" || op == "delete"
	if b.creds.anonymous && (re.StatusCode == 401 || re.StatusCode == 403 || bloberror.Code(re.ErrorCode) == bloberror.ResourceNotFound) {
		// Azure answers an anonymous read of a private container with 404
		// ResourceNotFound or 401/403; Azurite with 403.
		return "the container does not allow public (anonymous) access: give credentials (a SAS token, AZURE_STORAGE_KEY, az login) instead of --no-sign-request"
	}
	switch bloberror.Code(re.ErrorCode) {
	case bloberror.ContainerNotFound:
		return fmt.Sprintf("container %q does not exist in storage account %q (create it: az storage container create --account-name %s --name %s)",
			b.loc.Container, b.loc.Account, b.loc.Account, b.loc.Container)
	case bloberror.BlobNotFound:
		return "no such blob"
	case bloberror.ResourceNotFound:
		return fmt.Sprintf("storage account %q or container %q not found", b.loc.Account, b.loc.Container)
	case bloberror.AuthenticationFailed, bloberror.InvalidAuthenticationInfo, bloberror.NoAuthenticationInformation:
		return fmt.Sprintf("the storage account rejected the credentials from %s: a wrong account key, or a SAS token that is malformed, expired or for another account or container", b.creds.how)
	case bloberror.AuthorizationFailure:
		// Azurite says this for a wrong key or signature; Azure for a
		// firewall or network rule as well.
		return fmt.Sprintf("the storage account refused the credentials from %s: a wrong account key, a SAS token that is malformed, expired or for another container, or the account's firewall", b.creds.how)
	case bloberror.AuthorizationPermissionMismatch,
		bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch,
		bloberror.AuthorizationProtocolMismatch, bloberror.AuthorizationSourceIPMismatch, bloberror.InsufficientAccountPermissions:
		if writing {
			return fmt.Sprintf("the credentials from %s may not write to this container: a mirror needs read, add, create, write and list (a SAS with sp=racwl, or the Storage Blob Data Contributor role)", b.creds.how)
		}
		return fmt.Sprintf("the credentials from %s may not read this container: a pull needs read and list (a SAS with sp=rl, or the Storage Blob Data Reader role)", b.creds.how)
	case bloberror.BlobArchived, bloberror.BlobBeingRehydrated:
		return "the blob is in the Archive tier: rehydrate it to Hot or Cool first (az storage blob set-tier --tier Hot --rehydrate-priority High)"
	case bloberror.InvalidRange:
		return "the range is outside the blob"
	case bloberror.ServerBusy, bloberror.OperationTimedOut, bloberror.InternalError:
		return "the storage service is busy or failing; retrying may help"
	}
	if re.StatusCode == 404 {
		return "not found"
	}
	return ""
}

// scrub replaces every secret (a SAS token, its signature, an account key,
// a connection string) in err's message with REDACTED, keeping err for
// errors.Is/As. The errors above never build a message from a request URL;
// this is the net under them.
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if len(s) >= 8 {
			clean = strings.ReplaceAll(clean, s, "REDACTED")
		}
	}
	// Any SAS-looking query left (a signature we were not told about).
	clean = sigRE(clean)
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

// sigRE redacts sig=… query values wherever they appear.
func sigRE(s string) string {
	for _, k := range []string{"sig=", "Sig=", "SharedAccessSignature=", "AccountKey="} {
		i := 0
		for {
			j := strings.Index(s[i:], k)
			if j < 0 {
				break
			}
			start := i + j + len(k)
			end := start
			for end < len(s) && !strings.ContainsRune("&; \t\n\"'", rune(s[end])) {
				end++
			}
			if end > start && s[start:end] != "REDACTED" {
				s = s[:start] + "REDACTED" + s[end:]
			}
			i = start
		}
	}
	return s
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
