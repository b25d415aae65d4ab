// Command azsas prints a container SAS token (the query string, no '?')
// signed with Azurite's well-known development key, for scripts that drive
// Azurite with tools that only take SAS URLs (azcopy in make bench-cloud).
// With -create ENDPOINT it first creates the container there (a container
// SAS cannot).
//
//	go run ./internal/azuritetest/azsas [-create http://127.0.0.1:PORT/devstoreaccount1] CONTAINER [PERMISSIONS]
//
// PERMISSIONS are some of racwdl (default all).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/gptoss/gptoss/internal/azuritetest"
)

func main() {
	create := flag.String("create", "", "create the container at this blob endpoint first")
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		fmt.Fprintln(os.Stderr, "usage: azsas [-create ENDPOINT] CONTAINER [PERMISSIONS]")
		os.Exit(2)
	}
	name, perms := flag.Arg(0), "racwdl"
	if flag.NArg() == 2 {
		perms = flag.Arg(1)
	}
	if *create != "" {
		cred, err := container.NewSharedKeyCredential(azuritetest.Account, azuritetest.Key)
		if err == nil {
			var c *container.Client
			if c, err = container.NewClientWithSharedKeyCredential(*create+"/"+name, cred, nil); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err = c.Create(ctx, nil)
				cancel()
				if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
					err = nil
				}
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "azsas: create container:", err)
			os.Exit(1)
		}
	}
	q, err := azuritetest.ContainerSAS(name, perms)
	if err != nil {
		fmt.Fprintln(os.Stderr, "azsas:", err)
		os.Exit(2)
	}
	fmt.Println(q)
}
