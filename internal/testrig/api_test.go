package testrig

import (
	"context"
	"testing"

	"github.com/tfsite/tfsite/agent/api"
	"github.com/tfsite/tfsite/agent/site"
)

type statusOnly struct{}

func (statusOnly) Status(context.Context) api.Status {
	return api.Status{Site: "s", Phase: "allocated"}
}
func (statusOnly) Peers(context.Context) []api.Peer { return nil }
func (statusOnly) BGPPeers(context.Context) ([]site.BGPPeer, error) {
	return nil, api.ErrUnavailable
}
func (statusOnly) Release(context.Context, string) error { return api.ErrNotFound }

func TestServeAPIAnswers(t *testing.T) {
	sock := ServeAPI(t, statusOnly{})
	st, err := api.NewClient(sock).Status(t.Context())
	if err != nil || st.Site != "s" {
		t.Fatalf("status over the served socket: %+v, %v", st, err)
	}
}
