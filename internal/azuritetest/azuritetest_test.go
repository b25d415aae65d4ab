package azuritetest

import (
	"context"
	"strings"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// The emulator enforces what the backend tests rely on: shared-key auth,
// SAS permissions, and a process that is gone after the test.
func TestStartSASAndStop(t *testing.T) {
	var pid int
	t.Run("server", func(t *testing.T) {
		s := Start(t)
		pid = s.PID()
		s.CreateContainer(t, "box")
		ctx := context.Background()
		ro, err := container.NewClientWithNoCredential(s.Endpoint+"/box?"+s.SAS(t, "box", "rl"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ro.NewBlockBlobClient("x").UploadBuffer(ctx, []byte("hi"), nil); !bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch) {
			t.Fatalf("upload with a read-only SAS: %v", err)
		}
		rw, _ := container.NewClientWithNoCredential(s.Endpoint+"/box?"+s.SAS(t, "box", "racwdl"), nil)
		if _, err := rw.NewBlockBlobClient("x").UploadBuffer(ctx, []byte("hi"), nil); err != nil {
			t.Fatalf("upload with a write SAS: %v", err)
		}
		pager := ro.NewListBlobsFlatPager(nil)
		page, err := pager.NextPage(ctx)
		if err != nil || len(page.Segment.BlobItems) != 1 || *page.Segment.BlobItems[0].Name != "x" {
			t.Fatalf("list: %v %+v", err, page)
		}
		if !strings.Contains(s.ConnectionString(), "BlobEndpoint="+s.Endpoint) {
			t.Error(s.ConnectionString())
		}
	})
	if pid == 0 {
		t.Skip("azurite did not start (see the subtest)")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("azurite (pid %d) still runs after the test", pid)
	}
}
