package tf

// The contract-test server for TF's VNC config API lives in agent/tf/tfcontract
// (one copy for every package's tests); this adapter gives the tests of this
// package their typed view of it.

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/tfsite/tfsite/agent/tf/tfcontract"
)

type vncServer struct {
	*tfcontract.Server
	srv   *httptest.Server
	calls callLog
}

// callLog prints the server's recorded calls (for failure messages).
type callLog struct{ s *tfcontract.Server }

func (c callLog) String() string { return fmt.Sprint(c.s.Calls()) }

func newVNCServer(t *testing.T, local string) *vncServer {
	s := tfcontract.New(t, local)
	return &vncServer{Server: s, srv: s.HTTP, calls: callLog{s}}
}

func (s *vncServer) writes() int    { return s.Writes() }
func (s *vncServer) resetCalls()    { s.ResetCalls() }
func (s *vncServer) gscASN() uint32 { return s.ClusterASN() }

// router returns a bgp-router's params and the names it references.
func (s *vncServer) router(name string) (BGPRouterParams, []string, bool) {
	raw, refs, ok := s.Router(name)
	var p BGPRouterParams
	if ok {
		_ = json.Unmarshal(raw, &p)
	}
	return p, refs, ok
}
