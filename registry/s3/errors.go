package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/gptoss/gptoss/registry"
)

// statusOf is the HTTP status of a failed SDK call, 0 if none came back.
func statusOf(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// wrap turns an SDK error into one line that says what to do, wrapping
// registry's kinds: a *registry.HTTPError (status, code, Retry-After) for
// retry decisions, registry.ErrUnauthorized for rejected credentials. The
// SDK's own text ("operation error S3: GetObject, https response error
// StatusCode: 403, RequestID: …") is replaced, and nothing of the
// credentials is ever included: server messages are scrubbed of the key id.
func (b *Bucket) wrap(op, key string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	loc := b.Describe()
	if key != "" {
		loc += "/" + key
	}
	status := statusOf(err)
	code, msg := "", ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	if status == 0 && code == "" {
		// No HTTP answer: DNS, refused connection, reset. Keep the cause
		// (it names the host, never a credential); retryable.
		return fmt.Errorf("%s %s: %s", op, loc, scrub(rootCause(err), b.keyID))
	}
	h := &registry.HTTPError{Op: op, URL: loc, Status: status, Code: code}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		h.RetryAfter = registry.ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now(), 5*time.Minute)
	}
	creds := "the credentials in use"
	if b.anon {
		creds = "unsigned requests"
	}
	hint := "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	switch code {
	case "NoSuchBucket":
		h.Status = http.StatusNotFound
		h.Message = fmt.Sprintf("bucket %q does not exist%s (check the name, the account and --endpoint)", b.name, b.where())
		return &registry.Permanent{Err: h}
	case "NoSuchKey":
		h.Status = http.StatusNotFound
		h.Message = "no such object"
		return &registry.Permanent{Err: h}
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
		"InvalidSecurity", "MissingSecurityHeader", "AuthFailure", "UnrecognizedClientException":
		return &registry.Permanent{Err: fmt.Errorf("%w: %s %s: the AWS credentials were rejected (%s): %s", registry.ErrUnauthorized, op, loc, code, hint)}
	case "AccessDenied", "AllAccessDisabled", "AccountProblem", "Forbidden":
		h.Status = http.StatusForbidden
		if b.noCreds {
			h.Message = "access denied: no AWS credentials were found, so the request went unsigned; " + hint
			return &registry.Permanent{Err: fmt.Errorf("%w: %w", registry.ErrUnauthorized, h)}
		}
		h.Message = fmt.Sprintf("access denied to %s%s (the bucket policy or IAM role must allow s3:%s)", creds, b.where(), action(op))
		return &registry.Permanent{Err: h}
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "IncorrectEndpoint":
		region := ""
		if re != nil && re.Response != nil {
			region = re.Response.Header.Get("X-Amz-Bucket-Region")
		}
		if region != "" {
			h.Message = fmt.Sprintf("bucket %q is in region %s, not %s: pass --region %s (or drop --region to discover it)", b.name, region, b.region, region)
		} else if b.endpoint != "" {
			h.Message = fmt.Sprintf("the store at %s does not take region %s: pass its region with --region or AWS_REGION", b.endpoint, b.region)
		} else {
			h.Message = fmt.Sprintf("bucket %q is not in region %s: pass its --region (or drop --region to discover it)", b.name, b.region)
		}
		h.Status = http.StatusBadRequest
		return &registry.Permanent{Err: h}
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "RequestTimeTooSkewed":
		if code == "SlowDown" && h.Status < 500 {
			h.Status = http.StatusServiceUnavailable
		}
	}
	switch {
	case status == http.StatusNotFound:
		h.Message = "not found" + b.where()
	case status == http.StatusForbidden:
		// HEAD responses carry no error body: the code is empty.
		if b.noCreds {
			h.Message = "access denied: no AWS credentials were found, so the request went unsigned; " + hint
			return &registry.Permanent{Err: fmt.Errorf("%w: %w", registry.ErrUnauthorized, h)}
		}
		h.Message = fmt.Sprintf("access denied to %s%s (wrong credentials, or the policy must allow s3:%s)", creds, b.where(), action(op))
	case status == http.StatusMovedPermanently:
		h.Message = fmt.Sprintf("bucket %q is in another region than %s: pass its --region", b.name, b.region)
		h.Status = http.StatusBadRequest
	default:
		h.Message = scrub(msg, b.keyID)
	}
	return h
}

func (b *Bucket) where() string {
	if b.endpoint != "" {
		return " at " + b.endpoint
	}
	return ""
}

func action(op string) string {
	switch op {
	case "list":
		return "ListBucket"
	case "upload":
		return "PutObject"
	case "delete":
		return "DeleteObject"
	}
	return "GetObject"
}

// rootCause is the innermost error text of a transport failure, without
// the SDK's "operation error S3: GetObject, …" wrapping.
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Op + " " + redactURL(ue.URL) + ": " + ue.Err.Error()
		}
		err = u
	}
}

// redactURL drops the user info and query (signatures of presigned URLs).
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// scrub removes an access key id from a server message.
func scrub(s, keyID string) string {
	if keyID != "" {
		s = strings.ReplaceAll(s, keyID, "[access key]")
	}
	return strings.Join(strings.Fields(s), " ")
}
