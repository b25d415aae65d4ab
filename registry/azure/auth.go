package azure

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/gptoss/gptoss/registry"
)

// Environment variables, as the az CLI and the Azure SDKs name them.
const (
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	EnvSASToken         = "AZURE_STORAGE_SAS_TOKEN"
	EnvKey              = "AZURE_STORAGE_KEY"
	EnvBlobEndpoint     = "AZURE_STORAGE_BLOB_ENDPOINT"
	// EnvBlockMB is the upload block size in MiB (default 64), as azcopy's
	// --block-size-mb.
	EnvBlockMB = "GPTOSS_AZURE_BLOCK_MB"
)

// emulatorEndpoint is where UseDevelopmentStorage=true points (Azurite's
// default blob port).
const emulatorEndpoint = "http://127.0.0.1:10000/devstoreaccount1"

// emulatorKey is the emulator's published development key (not a secret).
const emulatorKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// connString is a parsed storage connection string (the fields gptoss uses).
type connString struct {
	account, key, sas, blobEndpoint string
}

// parseConnString reads Key=Value;… pairs. Errors never echo the string (it
// holds the key).
func parseConnString(s string) (connString, error) {
	var c connString
	kv := map[string]string{}
	for _, part := range strings.Split(strings.TrimSpace(s), ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return c, fmt.Errorf("%w: %s is not a connection string (Key=Value;… pairs)", registry.ErrUnauthorized, EnvConnectionString)
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		c.account, c.key, c.blobEndpoint = "devstoreaccount1", emulatorKey, emulatorEndpoint
		if p := kv["developmentstorageproxyuri"]; p != "" {
			c.blobEndpoint = strings.TrimRight(p, "/") + ":10000/devstoreaccount1"
		}
		return c, nil
	}
	c.account, c.key, c.blobEndpoint = kv["accountname"], kv["accountkey"], kv["blobendpoint"]
	c.sas = strings.TrimPrefix(kv["sharedaccesssignature"], "?")
	if c.blobEndpoint == "" && c.account != "" {
		proto, suffix := kv["defaultendpointsprotocol"], kv["endpointsuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		c.blobEndpoint = proto + "://" + c.account + ".blob." + suffix
	}
	if c.key == "" && c.sas == "" {
		return c, fmt.Errorf("%w: %s has neither AccountKey nor SharedAccessSignature", registry.ErrUnauthorized, EnvConnectionString)
	}
	if c.blobEndpoint == "" {
		return c, fmt.Errorf("%w: %s has neither AccountName nor BlobEndpoint", registry.ErrUnauthorized, EnvConnectionString)
	}
	return c, nil
}

// credentials is what a Bucket authenticates with, and the secrets its
// messages must never contain.
type credentials struct {
	how       string // "the URL's SAS token", "AZURE_STORAGE_KEY", … for messages
	anonymous bool
	sas       string
	key       *container.SharedKeyCredential
	token     azcore.TokenCredential
	secrets   []string
}

// resolve picks the endpoint and the credentials for a location, in this
// order: a SAS in the URL; AZURE_STORAGE_CONNECTION_STRING (its
// BlobEndpoint too); AZURE_STORAGE_SAS_TOKEN; AZURE_STORAGE_KEY; else
// DefaultAzureCredential (environment service principal, workload identity,
// managed identity, az login). The endpoint is Options.Endpoint, else
// AZURE_STORAGE_BLOB_ENDPOINT, else the connection string's, else the URL's
// host, else https://ACCOUNT.blob.core.windows.net.
func resolve(loc Location, o Options) (svc string, c credentials, err error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = getenv(EnvBlobEndpoint)
	}
	var cs connString
	hasCS := false
	if s := getenv(EnvConnectionString); s != "" {
		c.secrets = append(c.secrets, s)
		cs, err = parseConnString(s)
		switch {
		case loc.SAS != "":
			// The URL's SAS wins; the connection string may still say
			// where the account's endpoint is.
			if err == nil && (cs.account == "" || cs.account == loc.Account) && endpoint == "" {
				endpoint = cs.blobEndpoint
			}
			err = nil
		case err != nil:
			return "", c, err
		case cs.account != "" && cs.account != loc.Account:
			return "", c, fmt.Errorf("%w: %s is for storage account %q, the URL names %q", registry.ErrUnauthorized, EnvConnectionString, cs.account, loc.Account)
		default:
			hasCS = true
			c.secrets = append(c.secrets, cs.key, cs.sas)
			if endpoint == "" {
				endpoint = cs.blobEndpoint
			}
		}
	}
	if endpoint == "" {
		endpoint = loc.Endpoint
	}
	if svc, err = serviceURL(endpoint, loc.Account); err != nil {
		return "", c, err
	}
	switch {
	case o.Anonymous:
		c.how, c.anonymous = "anonymous access (--no-sign-request)", true
	case loc.SAS != "":
		c.how, c.sas = "the URL's SAS token", loc.SAS
	case hasCS && cs.key != "":
		c.how = EnvConnectionString
		c.key, err = container.NewSharedKeyCredential(loc.Account, cs.key)
	case hasCS:
		c.how, c.sas = EnvConnectionString, cs.sas
	case getenv(EnvSASToken) != "":
		c.how, c.sas = EnvSASToken, strings.TrimPrefix(getenv(EnvSASToken), "?")
	case getenv(EnvKey) != "":
		c.how = EnvKey
		c.secrets = append(c.secrets, getenv(EnvKey))
		c.key, err = container.NewSharedKeyCredential(loc.Account, getenv(EnvKey))
	default:
		c.how = "DefaultAzureCredential"
		if strings.HasPrefix(svc, "http://") {
			return "", c, fmt.Errorf("%w: no credentials for %s: set %s, %s or %s, put a SAS token in the URL, or --no-sign-request for a public container (Azure AD tokens need an https endpoint)",
				registry.ErrUnauthorized, loc, EnvConnectionString, EnvKey, EnvSASToken)
		}
		if c.token, err = azidentity.NewDefaultAzureCredential(nil); err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			return "", c, fmt.Errorf("%w: no credentials for %s: set %s, %s or %s, put a SAS token in the URL, or sign in (az login, a managed identity): %s",
				registry.ErrUnauthorized, loc, EnvConnectionString, EnvKey, EnvSASToken, first)
		}
	}
	if err != nil {
		// Only the shared-key constructor can fail here: a key that is not
		// base64. Its error text is safe, but say it our way.
		return "", c, fmt.Errorf("%w: the account key from %s is not valid base64", registry.ErrUnauthorized, c.how)
	}
	if c.sas != "" {
		if v, perr := url.ParseQuery(c.sas); perr != nil || v.Get("sig") == "" {
			return "", c, fmt.Errorf("%w: the SAS token from %s has no signature (sig=)", registry.ErrUnauthorized, c.how)
		} else {
			c.secrets = append(c.secrets, c.sas, v.Get("sig"), url.QueryEscape(v.Get("sig")))
		}
	}
	return svc, c, nil
}
